// Package cgroups names cgroup v2 ids: the id the kernel reports for a
// task (bpf_get_current_cgroup_id) is the inode number of its directory
// in the cgroup2 file system, so a walk of that tree maps ids to paths.
package cgroups

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Resolver maps cgroup ids to paths ("/system.slice/nginx.service"),
// walking the cgroup2 tree again at most every minWalk when it meets an
// unknown id. It is for reports, not for the per-event path.
type Resolver struct {
	root     string // cgroup2 mount point; "" when there is none
	paths    map[uint64]string
	lastWalk time.Time
	minWalk  time.Duration
}

// NewResolver finds the cgroup2 mount in /proc/self/mountinfo.
func NewResolver() *Resolver {
	return &Resolver{root: Mount(), paths: map[uint64]string{}, minWalk: 5 * time.Second}
}

// Mount is where this process sees the cgroup2 file system ("" if nowhere).
func Mount() string { return cgroup2Mount("/proc/self/mountinfo") }

// NewResolverAt resolves ids below root (tests).
func NewResolverAt(root string) *Resolver {
	return &Resolver{root: root, paths: map[uint64]string{}}
}

// Path returns the cgroup path of id, or "" when unknown.
func (r *Resolver) Path(id uint64) string {
	if id == 0 || r.root == "" {
		return ""
	}
	if p, ok := r.paths[id]; ok {
		return p
	}
	if time.Since(r.lastWalk) < r.minWalk {
		return ""
	}
	r.lastWalk = time.Now()
	r.walk()
	return r.paths[id]
}

func (r *Resolver) walk() {
	filepath.WalkDir(r.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel := strings.TrimPrefix(path, r.root)
		if rel == "" {
			rel = "/"
		}
		r.paths[st.Ino] = rel
		return nil
	})
}

// cgroup2Mount returns where the cgroup2 file system is mounted.
func cgroup2Mount(mountinfo string) string {
	f, err := os.Open(mountinfo)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source ...
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(right, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(left); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}
