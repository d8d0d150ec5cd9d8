package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/event"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "" = valid
		check   func(options) bool
	}{
		{nil, "", func(o options) bool { return o.format == "json" && o.probe.PID == 0 && o.probe.Family == 0 }},
		{[]string{"--format", "text"}, "", func(o options) bool { return o.format == "text" }},
		{[]string{}, "", func(o options) bool { return o.probe.WakeupBytes == 1<<20 }},
		{[]string{"--ring-buffer-size", "65536"}, "", func(o options) bool { return o.probe.WakeupBytes == 16384 }},
		{[]string{"--wakeup-bytes", "0"}, "", func(o options) bool { return o.probe.WakeupBytes == 0 }},
		{[]string{"--pid", "42", "--port", "443", "--ipv6"}, "", func(o options) bool {
			return o.probe.PID == 42 && o.probe.Port == 443 && o.probe.Family == event.AFInet6
		}},
		{[]string{"--ipv4"}, "", func(o options) bool { return o.probe.Family == event.AFInet }},
		{[]string{"--format", "xml"}, "invalid --format", nil},
		{[]string{"--pid", "0"}, "invalid --pid", nil},
		{[]string{"--pid", "-3"}, "invalid --pid", nil},
		{[]string{"--pid", "abc"}, "invalid --pid", nil},
		{[]string{"--port", "0"}, "invalid --port", nil},
		{[]string{"--port", "65536"}, "invalid --port", nil},
		{[]string{"--port", "http"}, "invalid --port", nil},
		{[]string{"--ipv4", "--ipv6"}, "exclude each other", nil},
		{[]string{"--nope"}, "flag provided but not defined", nil},
		{[]string{"extra"}, "unexpected argument", nil},
		{[]string{"--ring-buffer-size", "4096"}, "", func(o options) bool { return o.probe.RingBytes == 4096 }},
		{[]string{"--ring-buffer-size=1073741824"}, "", func(o options) bool { return o.probe.RingBytes == 1<<30 }},
		{[]string{"--ring-buffer-size", "2048"}, "invalid --ring-buffer-size", nil},
		{[]string{"--ring-buffer-size", "12288"}, "invalid --ring-buffer-size", nil},
		{[]string{"--ring-buffer-size", "2147483648"}, "invalid --ring-buffer-size", nil},
		{[]string{"--ring-buffer-size", "0x1000"}, "invalid --ring-buffer-size", nil},
		{[]string{"--ring-buffer-size", "-4096"}, "invalid --ring-buffer-size", nil},
		{[]string{"--pid="}, "invalid --pid: empty", nil},
		{[]string{"--port", ""}, "invalid --port: empty", nil},
		{[]string{"--btf="}, "invalid --btf: empty", nil},
		{[]string{"--check"}, "", func(o options) bool { return o.check }},
		{[]string{"--check=maybe"}, "invalid boolean", nil},
		{[]string{"--metrics-addr", ":9464"}, "", func(o options) bool { return o.metricsAddr == "127.0.0.1:9464" }},
		{[]string{"--metrics-addr", "localhost:0"}, "", func(o options) bool { return o.metricsAddr == "127.0.0.1:0" }},
		{[]string{"--metrics-addr", "[::1]:9464"}, "", func(o options) bool { return o.metricsAddr == "[::1]:9464" }},
		{[]string{"--metrics-addr", "0.0.0.0:9464"}, "", func(o options) bool { return o.metricsAddr == "0.0.0.0:9464" }},
		{[]string{"--metrics-addr", "10.1.2.3:80"}, "", func(o options) bool { return o.metricsAddr == "10.1.2.3:80" }},
		{nil, "", func(o options) bool { return o.metricsAddr == "" && o.ownerRescan == 10*time.Second }},
		{[]string{"--owner-rescan", "0"}, "", func(o options) bool { return o.ownerRescan == 0 }},
		{[]string{"--owner-rescan", "500ms"}, "", func(o options) bool { return o.ownerRescan == 500*time.Millisecond }},
		{[]string{"--owner-rescan", "1ms"}, "invalid --owner-rescan", nil},
		{[]string{"--owner-rescan", "-1s"}, "invalid --owner-rescan", nil},
		{[]string{"--metrics-addr", "9464"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", ":"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", ":65536"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", ":http"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", ":-1"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", ":09464"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", "example.com:9464"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", "127.0.0.1"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr", "::1:9464"}, "invalid --metrics-addr", nil},
		{[]string{"--metrics-addr="}, "invalid --metrics-addr: empty", nil},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if tc.wantErr == "" {
			if err != nil || !tc.check(o) {
				t.Errorf("%v: %+v, %v", tc.args, o, err)
			}
			continue
		}
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: error %v, want usage error containing %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestExitCodes(t *testing.T) {
	var buf bytes.Buffer
	if c := exitCode(usageError{errors.New("bad")}, &buf); c != 2 || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("usage error: code %d, output %q", c, buf.String())
	}
	if c := exitCode(flag.ErrHelp, io.Discard); c != 0 {
		t.Errorf("help: %d", c)
	}
	if c := exitCode(errors.New("boom"), io.Discard); c != 1 {
		t.Errorf("failure: %d", c)
	}
	if c := exitCode(nil, io.Discard); c != 0 {
		t.Errorf("success: %d", c)
	}
}

// FuzzParseFlags feeds combinations of flags and values. Whatever the input,
// parseFlags must not panic, every rejection must be a one-line usage error
// (or -h), and every accepted result must satisfy the validated invariants.
func FuzzParseFlags(f *testing.F) {
	f.Add("--pid", "1", "--port", "65535")
	f.Add("--format", "text", "--ipv6", "--btf=/x")
	f.Add("--ring-buffer-size", "4096", "--check", "--debug")
	f.Add("--pid=", "4194304", "-port", "1")
	f.Add("--ipv4", "--ipv6", "--format=json", "x")
	f.Add("-h", "", "", "")
	f.Add("--ring-buffer-size=8192", "--pid", "99999999999", "--")
	f.Add("--metrics-addr", ":9464", "--metrics-addr=[::1]:0", "")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		var args []string
		for _, s := range []string{a, b, c, d} {
			if s != "" {
				args = append(args, s)
			}
		}
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			var ue usageError
			if !errors.Is(err, flag.ErrHelp) && !errors.As(err, &ue) {
				t.Fatalf("%q: error %v is not a usage error", args, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: multi-line error %q", args, err)
			}
			return
		}
		if o.format != "json" && o.format != "text" {
			t.Fatalf("%q: accepted format %q", args, o.format)
		}
		if o.probe.PID > 1<<22 {
			t.Fatalf("%q: accepted pid %d", args, o.probe.PID)
		}
		if o.probe.Family != 0 && o.probe.Family != event.AFInet && o.probe.Family != event.AFInet6 {
			t.Fatalf("%q: family %d", args, o.probe.Family)
		}
		if r := o.probe.RingBytes; r != 0 && (r < 4096 || r&(r-1) != 0 || r > maxRingBytes) {
			t.Fatalf("%q: accepted ring size %d", args, r)
		}
		if a := o.metricsAddr; a != "" {
			if _, err := netip.ParseAddrPort(a); err != nil {
				t.Fatalf("%q: accepted metrics address %q", args, a)
			}
		}
		valued := []string{"pid", "port", "btf", "ring-buffer-size", "format", "metrics-addr"}
		for i, s := range args {
			if s == "--" {
				break
			}
			if i > 0 && slices.ContainsFunc(valued, func(n string) bool { return args[i-1] == "-"+n || args[i-1] == "--"+n }) {
				continue // s is that flag's value
			}
			for _, name := range valued {
				if s == "--"+name+"=" || s == "-"+name+"=" {
					t.Fatalf("%q: accepted empty --%s", args, name)
				}
			}
		}
	})
}
