package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsURL is the endpoint tcplens announced on stderr at start-up.
func metricsURL(t *testing.T, rt *runningTool) string {
	t.Helper()
	m := regexp.MustCompile(`tcplens: metrics at (http://\S+)`).FindStringSubmatch(rt.errAll.String())
	if m == nil {
		t.Fatalf("no metrics line on stderr: %s", rt.errAll.String())
	}
	return m[1]
}

// scrape reads a Prometheus text page into "name{labels}" -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("scrape %s: %s, %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// listenersOf lists the listening TCP sockets of process pid (ss -ltnp).
func listenersOf(t *testing.T, pid int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-Hltnp").CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	var ls []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, fmt.Sprintf("pid=%d,", pid)) {
			f := strings.Fields(l)
			ls = append(ls, f[3])
		}
	}
	return ls
}

// TestMetrics: --metrics-addr :0 serves /metrics on loopback and nowhere
// else; its counters follow real connections; its map gauges are live.
func TestMetrics(t *testing.T) {
	rt := startTool(t, "--metrics-addr", ":0")
	url := metricsURL(t, rt)
	ls := listenersOf(t, rt.cmd.Process.Pid)
	if len(ls) != 1 || !strings.HasPrefix(ls[0], "127.0.0.1:") || !strings.Contains(url, ls[0]) {
		t.Fatalf("tcplens listens on %v, metrics at %s; want exactly the one loopback endpoint", ls, url)
	}
	before := scrape(t, url)
	for _, k := range []string{"tcplens_records_produced_total", "tcplens_records_lost_total", "tcplens_kernel_skipped_total",
		"tcplens_decode_errors_total", `tcplens_untracked_total{map="socks"}`, `tcplens_map_entries{map="socks"}`,
		`tcplens_map_entries{map="children"}`, "tcplens_time_wait_sockets", "tcplens_close_wait_stuck_sockets",
		`tcplens_time_wait_ends_total{end="killed"}`} {
		if _, ok := before[k]; !ok {
			t.Errorf("metric %s missing", k)
		}
	}

	const n = 20
	srv, cli := startPeer(t, ""), startPeer(t, "")
	ln := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	for i := 0; i < n; i++ {
		cli.do("connect %s", ln)
		srv.do("accept")
	}
	hs := `tcplens_handshakes_total{role="active",result="ok"}`
	var after map[string]float64
	for end := time.Now().Add(10 * time.Second); ; {
		after = scrape(t, url)
		if after[hs]-before[hs] >= n && after[`tcplens_map_entries{map="socks"}`] >= 2*n+1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("after %d connections: handshakes %v -> %v, socks entries %v", n, before[hs], after[hs], after[`tcplens_map_entries{map="socks"}`])
		}
		time.Sleep(100 * time.Millisecond)
	}
	est := `tcplens_state_transitions_total{state="ESTABLISHED"}`
	if after[est]-before[est] < 2*n || after["tcplens_records_read_total"] <= before["tcplens_records_read_total"] ||
		after["tcplens_records_produced_total"] < after["tcplens_records_read_total"] {
		t.Errorf("counters did not follow: before %v\nafter %v", before, after)
	}
	if code, stderr := rt.stop(t, 2); code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
