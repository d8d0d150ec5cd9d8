package output

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tcplens/tcplens/internal/event"
	"github.com/tcplens/tcplens/internal/ktime"
	"github.com/tcplens/tcplens/internal/lifecycle"
)

var epoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func sample() event.Record {
	return event.Record{
		Kind: event.KindState, TS: 1_500_000_000, StateSince: 1_499_999_000, Cookie: 77, Owner: 4242, Comm: "nginx",
		Family: event.AFInet, SAddr: netip.MustParseAddr("127.0.0.1"), SPort: 8080,
		DAddr: netip.MustParseAddr("127.0.0.1"), DPort: 50000, Old: event.SynRecv, New: event.Established,
	}
}

func TestJSONState(t *testing.T) {
	var buf bytes.Buffer
	w := NewJSON(&buf, ktime.FixedClock(epoch))
	r := sample()
	if err := w.State(&r); err != nil {
		t.Fatal(err)
	}
	r.StateSince = 0
	r.Family, r.SAddr, r.DAddr = event.AFInet6, netip.MustParseAddr("::1"), netip.MustParseAddr("::1")
	w.State(&r)
	w.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := `{"ts":"2026-11-25T12:00:01.5Z","type":"state","sock":77,"pid":4242,"comm":"nginx","family":"ipv4","saddr":"127.0.0.1","sport":8080,"daddr":"127.0.0.1","dport":50000,"old":"SYN_RECV","new":"ESTABLISHED","dwell_ns":1000}`
	if lines[0] != want {
		t.Errorf("got  %s\nwant %s", lines[0], want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["dwell_ns"]; ok {
		t.Error("dwell_ns present when unknown")
	}
	if m["saddr"] != "::1" || m["family"] != "ipv6" {
		t.Errorf("ipv6 line %v", m)
	}
}

func TestJSONStringAlwaysValid(t *testing.T) {
	for _, s := range []string{"plain", `q"uote`, `back\slash`, "nl\nx", "ctl\x01\x1f\x7f", "bad\xff\xfeutf8", "日本", ""} {
		b := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%q -> %s: %v", s, b, err)
			continue
		}
		if utf8.ValidString(s) && back != s {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}

func FuzzJSONString(f *testing.F) {
	f.Add("abc")
	f.Add("\x00\xff\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		var back string
		if err := json.Unmarshal(AppendJSONString(nil, s), &back); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if want := perByteValid(s); back != want {
			t.Fatalf("%q: decoded back as %q, want %q", s, back, want)
		}
	})
}

func TestText(t *testing.T) {
	var buf bytes.Buffer
	w := NewText(&buf, ktime.FixedClock(epoch))
	r := sample()
	w.State(&r)
	r.Owner, r.Comm = 0, ""
	r.Family, r.SAddr = event.AFInet6, netip.MustParseAddr("::1")
	w.State(&r)
	w.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("text output:\n%s", buf.String())
	}
	for _, want := range []string{"4242", "nginx", "127.0.0.1:8080", "127.0.0.1:50000", "SYN_RECV", "ESTABLISHED", "1.0us"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "[::1]:8080") || !strings.Contains(lines[2], " ? ") {
		t.Errorf("unknown-owner IPv6 row: %q", lines[2])
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		500: "500ns", 1500: "1.5us", 2_500_000: "2.50ms", 61 * time.Second: "61.000s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func TestLost(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSON(&buf, ktime.FixedClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if err := j.Lost(6e9, 42); err != nil {
		t.Fatal(err)
	}
	j.Flush()
	if got, want := buf.String(), `{"ts":"2026-01-02T03:04:11Z","type":"lost","lost":42}`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	buf.Reset()
	tx := NewText(&buf, ktime.FixedClock(time.Unix(0, 0)))
	tx.Lost(1, 7)
	tx.Flush()
	if !strings.Contains(buf.String(), "LOST 7 records") {
		t.Errorf("text: %q", buf.String())
	}
}

func TestTextReport(t *testing.T) {
	var buf bytes.Buffer
	w := NewText(&buf, ktime.FixedClock(epoch))
	p := &lifecycle.Proc{Pid: 42, Comm: "nginx", Active: 3, Refused: 1}
	for _, v := range []uint64{3000, 5000, 5500, 90000} { // 3us, 5us, 5.5us, 90us
		p.Handshake.Add(v)
	}
	err := w.Report([]lifecycle.Summary{{Proc: p, TimeWaitNow: 2}}, &Host{TimeWait: 2,
		TopRemotes: []lifecycle.Remote{{Addr: netip.MustParseAddrPort("10.0.0.1:443"), Count: 2}}})
	w.Flush()
	out := buf.String()
	for _, want := range []string{
		"42      nginx                 3       0       1",
		"handshake latency, pid 42 (nginx):",
		"        2 -> 3         : 1        |*******",
		"        4 -> 7         : 2        |****************************************|",
		"       64 -> 127       : 1        |",
		"busiest remotes: 10.0.0.1:443 (2)",
	} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("report lacks %q (%v):\n%s", want, err, out)
		}
	}
}

func TestTimestampsMatchRFC3339Nano(t *testing.T) {
	f := tsFormatter{clock: ktime.FixedClock(epoch)}
	for _, ns := range []uint64{0, 1, 10, 999_999_999, 1_000_000_000, 1_500_000_000, 1_500_000_001, 86_400_123_456_789, 1_700_000_000_000_000_000} {
		want := ktime.FixedClock(epoch).Wall(ns).Format(time.RFC3339Nano)
		if got := string(f.append(nil, ns)); got != want {
			t.Errorf("%d: %s, want %s", ns, got, want)
		}
	}
}

func BenchmarkJSONState(b *testing.B) {
	w := NewJSON(io.Discard, ktime.FixedClock(epoch))
	r := sample()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.TS += 1000
		w.State(&r)
	}
}

func BenchmarkJSONStateIPv6(b *testing.B) {
	w := NewJSON(io.Discard, ktime.FixedClock(epoch))
	r := sample()
	r.Family, r.SAddr, r.DAddr = event.AFInet6, netip.MustParseAddr("fd00::1:2"), netip.MustParseAddr("2001:db8::42")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.TS += 1000
		w.State(&r)
	}
}
