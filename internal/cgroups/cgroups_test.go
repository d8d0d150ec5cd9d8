package cgroups

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestResolverWalksATree(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "system.slice", "nginx.service")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	r := NewResolverAt(root)
	if got := r.Path(st.Ino); got != "/system.slice/nginx.service" {
		t.Errorf("Path = %q", got)
	}
	if got := r.Path(0); got != "" {
		t.Errorf("Path(0) = %q", got)
	}
}

func TestCgroup2Mount(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(f, []byte("22 1 0:21 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n35 22 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"), 0o644)
	if got := cgroup2Mount(f); got != "/sys/fs/cgroup/unified" {
		t.Errorf("mount = %q", got)
	}
	if got := cgroup2Mount("/nonexistent"); got != "" {
		t.Errorf("missing mountinfo = %q", got)
	}
}
