package integration

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileProcessName: a process names itself with a quote, a newline,
// a control character and a byte that is not UTF-8, then connects. The
// real binary's JSON lines must all parse and carry the name, escaped.
func TestHostileProcessName(t *testing.T) {
	const name = "a\"b\n\x01\xffz"
	srv, cli := startPeer(t, ""), startPeer(t, "")
	addr := netip.MustParseAddrPort(srv.do("listen 127.0.0.1:0"))
	srv.do("serve")
	cli.do("rename %s", hex.EncodeToString([]byte(name)))
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(cli.Pid) + "/comm"); string(b) != name+"\n" {
		t.Fatalf("peer's comm is %q, want %q", b, name)
	}
	var out bytes.Buffer
	l := launch(t, &out, "--port", itoa(uint64(addr.Port())))
	l.waitReady(t)
	cli.do("churn %s 1", addr)
	time.Sleep(300 * time.Millisecond)
	l.cmd.Process.Signal(syscall.SIGTERM)
	if code, sig := l.wait(t, 20*time.Second); code != 0 || sig != 0 {
		t.Fatalf("exit %d %v: %s", code, sig, l.errText())
	}
	want := strings.ToValidUTF8(name, "\uFFFD")
	found := 0
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var v jsonLine
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("invalid JSON line %q: %v", sc.Text(), err)
		}
		if v.Pid == cli.Pid {
			found++
			if v.Comm != want {
				t.Errorf("comm %q, want %q in %s", v.Comm, want, sc.Text())
			}
			if !strings.Contains(sc.Text(), `"comm":"a\"b\n\u0001\ufffdz"`) {
				t.Errorf("comm not escaped as expected: %s", sc.Text())
			}
		}
	}
	if found == 0 {
		t.Fatalf("no line for the renamed client (pid %d):\n%s", cli.Pid, out.String())
	}
}
