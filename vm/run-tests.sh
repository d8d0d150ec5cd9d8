#!/usr/bin/env bash
# The VM stage: run the kernel-facing integration tests (package ./test) on
# Debian's 6.1 kernel, booted under qemu with software emulation (no KVM).
#
#   vm/run-tests.sh [go test flags for the guest, e.g. -test.run=TestTool]
#
# Needs root only for apt-get (qemu-system-x86, busybox-static, cpio,
# iproute2 are installed when missing). Everything it downloads or builds
# stays in .cache/vm/ inside the repository (git-ignored): the kernel .deb
# and its extracted tree are reused by later runs, the initramfs is rebuilt
# every run. Prints the guest's output and exits with the guest's test exit
# code; non-zero when the guest never reported one (panic, timeout).
#
# Environment:
#   TCPLENS_VM_KERNEL_PKG  kernel package (default: newest
#                          linux-image-6.1.0-N-cloud-amd64-unsigned apt knows)
#   TCPLENS_VM_TIMEOUT     seconds for the whole qemu run (default 240)
#   TCPLENS_VM_MEM, TCPLENS_VM_SMP   guest memory and CPUs (default 1G, 2)
#   TCPLENS_VM_CMD         a shell command to run in the guest instead of the
#                          tests (debugging: TCPLENS_VM_CMD='nft list ruleset')
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=$repo/.cache/vm
export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive
timeout_s=${TCPLENS_VM_TIMEOUT:-420} # ~130 s on an idle machine; TCG slows a lot under load
marker=TCPLENS-VM-EXIT
t0=$SECONDS

say() { echo "vm: [$((SECONDS - t0))s] $*" >&2; }
die() { echo "vm: $*" >&2; exit 1; }

# --- host tools ------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v ip >/dev/null || need+=(iproute2)
apt_updated=
if ((${#need[@]})); then
	say "installing ${need[*]}"
	apt-get update -qq
	apt_updated=1
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- kernel (cached in .cache/vm) -------------------------------------------
mkdir -p "$cache"
newest_kernel_pkg() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' |
		awk '{print $1}' | sort -V | tail -n1
}
pkg=${TCPLENS_VM_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(newest_kernel_pkg)
	if [ -z "$pkg" ] && [ -z "$apt_updated" ]; then
		apt-get update -qq && apt_updated=1
		pkg=$(newest_kernel_pkg)
	fi
	if [ -z "$pkg" ]; then # no apt lists: fall back to a cached kernel
		deb=$(ls "$cache"/linux-image-6.1.0-*-cloud-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -n1 || true)
		[ -n "$deb" ] || die "no linux-image-6.1.0-*-cloud-amd64-unsigned package known to apt, and none cached"
		pkg=$(basename "$deb" | cut -d_ -f1)
	fi
fi
deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
if [ -z "$deb" ]; then
	say "downloading $pkg"
	rm -f "$cache"/linux-image-*.deb "$cache"/*.deb.part
	if ! (cd "$cache" && apt-get download -q "$pkg" 2>&1 | { grep -v '^W: Download is performed unsandboxed' || true; }); then
		[ -n "$apt_updated" ] && die "apt-get download $pkg failed"
		apt-get update -qq && apt_updated=1
		(cd "$cache" && apt-get download -q "$pkg" 2>&1 | { grep -v '^W: Download is performed unsandboxed' || true; }) ||
			die "apt-get download $pkg failed"
	fi
	deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
	[ -n "$deb" ] || die "apt-get download $pkg left no .deb in $cache"
fi
kdir=$cache/kernel-$(basename "$deb" .deb)
if [ ! -f "$kdir/.done" ]; then
	say "extracting $(basename "$deb")"
	rm -rf "$cache"/kernel-*
	mkdir -p "$kdir"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards './boot/vmlinuz-*' './lib/modules/*'
	touch "$kdir/.done"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}

# --- initramfs --------------------------------------------------------------
# A merged-/usr tree like the host's, so the host's dynamic binaries (ip, ss,
# nft) and the libraries ldd names can be copied to the same paths.
root=$cache/root
rm -rf "$root"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,etc,opt/tcplens}
for d in bin sbin lib lib64; do ln -s usr/$d "$root/$d"; done
mkdir -p "$root/var" && ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"

copy_with_libs() { # copy a host binary and the shared libraries it needs
	local bin=$1 f
	install -D -m 0755 "$(readlink -f "$bin")" "$root$bin"
	for f in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[ -e "$root$f" ] || install -D -m 0755 "$(readlink -f "$f")" "$root$f"
	done
}
shfuncs=
for tool in ip ss nft capsh; do # ip is required; the others when the host has them
	p=$(command -v "$tool" || true)
	if [ -z "$p" ]; then
		[ "$tool" = ip ] && die "ip (iproute2) not found"
		say "$tool not on the host: not in the guest"
		continue
	fi
	p=$(readlink -f "$p") # e.g. /sbin/ip -> /usr/bin/ip
	copy_with_libs "$p"
	# Found first in PATH (/usr/sbin:/usr/bin) and in busybox sh, which runs
	# its own applets (ip) before searching PATH.
	for d in usr/sbin usr/bin; do
		[ -e "$root/$d/$tool" ] || ln -s "$p" "$root/$d/$tool"
	done
	shfuncs+="$tool() { $p \"\$@\"; }"$'\n'
done

# busybox for everything else: /init links its applets at boot (existing
# files, such as the real ip, are kept).
install -m 0755 /bin/busybox "$root/usr/bin/busybox"
ln -s busybox "$root/usr/bin/sh"
# capsh runs "/bin/bash -c" for its "--" arguments; busybox sh does that job.
if [ ! -e "$root/usr/bin/bash" ]; then
	printf '#!/usr/bin/sh\nexec /usr/bin/sh "$@"\n' >"$root/usr/bin/bash"
	chmod 0755 "$root/usr/bin/bash"
fi

# Modules (veth, nftables, sock_diag for ss, ...): the kernel loads them on
# demand through /sbin/modprobe (busybox) with modules.dep made here.
mods=$kdir/lib/modules/$kver
[ -f "$mods/modules.dep" ] || busybox depmod -b "$kdir" "$kver"
awk -F': *' '{
	split($1, a, " "); m = a[1]; deps[m] = $2
	if (m ~ /^kernel\/net\/(ipv4|ipv6|netfilter|sched|core|packet|bridge|8021q|llc|mptcp|unix)\// ||
	    m ~ /^kernel\/drivers\/net\/(veth|dummy|macvlan|ifb|tun)\.ko$/) want[m] = 1
} END {
	do { more = 0
		for (m in want) { n = split(deps[m], d, " ")
			for (i = 1; i <= n; i++) if (!(d[i] in want)) { want[d[i]] = 1; more = 1 } }
	} while (more)
	for (m in want) print m
}' "$mods/modules.dep" | (cd "$mods" && cpio -pdm --quiet "$root/lib/modules/$kver")
cp "$mods"/modules.builtin* "$mods"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
busybox depmod -b "$root" "$kver"

say "building static test binaries"
CGO_ENABLED=0 go test -c -o "$root/opt/tcplens/integration.test" ./test
# The probe's own kernel tests: some (the socket entry sweep) load programs
# the development VMs refuse, so they only really run here.
CGO_ENABLED=0 go test -c -o "$root/opt/tcplens/probe.test" ./internal/probe
CGO_ENABLED=0 go build -o "$root/opt/tcplens/tcplens" ./cmd/tcplens
chmod 0755 "$root/opt" "$root/opt/tcplens" "$root/opt/tcplens"/*

# Guest test flags: -test.v always; the caller's flags after it. The test
# binary's own timeout comes first, so a hung test still prints its stacks.
args="-test.v -test.count=1 -test.timeout=$((timeout_s > 80 ? timeout_s - 40 : timeout_s / 2))s"
for a in "$@"; do args+=" '${a//\'/}'"; done
run="TCPLENS_REQUIRE_ROOT=1 ./probe.test -test.v -test.count=1 && TCPLENS_BIN=/opt/tcplens/tcplens TCPLENS_REQUIRE_ROOT=1 ./integration.test $args"
if [ -n "${TCPLENS_VM_CMD:-}" ]; then
	printf '%s%s\n' "$shfuncs" "$TCPLENS_VM_CMD" >"$root/opt/tcplens/cmd.sh"
	run="sh -x /opt/tcplens/cmd.sh"
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
for f in /etc/protocols /etc/services /etc/iproute2; do
	if [ -e "$f" ]; then cp -a "$f" "$root/etc/"; fi
done
cat >"$root/init" <<EOF
#!/bin/sh
/usr/bin/busybox --install -s 2>/dev/null
export PATH=/usr/sbin:/usr/bin HOME=/tmp TMPDIR=/tmp
$shfuncs
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "vm: guest kernel \$(uname -r), \$(nproc) CPUs"
cd /opt/tcplens
$run
echo "$marker=\$?"
sync
poweroff -f
EOF
chmod 0755 "$root/init"
mknod -m 0600 "$root/dev/console" c 5 1
initrd=$cache/initrd.cpio.gz
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
say "initramfs $(($(stat -c %s "$initrd") / 1024)) KiB, kernel $kver; prepared in $((SECONDS - t0)) s"

# --- boot --------------------------------------------------------------------
out=$cache/guest.log
boot=$SECONDS
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -m "${TCPLENS_VM_MEM:-1G}" -smp "${TCPLENS_VM_SMP:-2}" \
	-nographic -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null | tr -d '\r' | tee "$out"
qrc=${PIPESTATUS[0]}
set -e
say "qemu exited $qrc after $((SECONDS - boot)) s (stage total $((SECONDS - t0)) s)"
code=$(sed -n "s/^$marker=\([0-9]*\)\$/\1/p" "$out" | tail -n1)
if [ -z "$code" ]; then
	((qrc == 124)) && say "timed out after ${timeout_s} s"
	die "the guest reported no test exit code (kernel panic, timeout or crash); output in $out"
fi
[ -n "${TCPLENS_VM_CMD:-}" ] && exit "$code"
pass=$(grep -c '^--- PASS' "$out" || true)
fail=$(grep -c '^--- FAIL' "$out" || true)
skip=$(grep -c '^--- SKIP' "$out" || true)
echo "vm-$kver: $pass passed, $fail failed, $skip skipped"
exit "$code"
