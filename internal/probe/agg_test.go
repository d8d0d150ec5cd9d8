package probe

import (
	"testing"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/lifecycle"
)

func TestSumAggWrapsAcrossCPUs(t *testing.T) {
	var c0, c1 bpfobj.TcplensProcAgg
	c0.Active, c1.Active = 2, 3
	c0.TwLive, c1.TwLive = 2, ^uint64(0)-2 // +2 on CPU 0, -3 on CPU 1
	c0.TwEnded, c1.TwEnded = 1, 0
	c0.HsHist[5], c1.HsHist[5] = 1, 2
	c0.TwHist[7], c1.TwHist[7] = 2, ^uint32(0) // +2, -1
	c0.HsMaxNs, c1.HsMaxNs = 100, 300
	c1.Comm = commBytes("srv")
	a := sumAgg(42, []bpfobj.TcplensProcAgg{c0, c1})
	if a.Pid != 42 || a.Comm != "srv" || a.Active != 5 || a.TimeWaitLive != -1 || a.HandshakeMax != 300 {
		t.Errorf("%+v", a)
	}
	if len(a.HandshakeHist) != lifecycle.AggBuckets || len(c0.HsHist) != lifecycle.AggBuckets {
		t.Fatalf("bucket count: Go %d, kernel %d", lifecycle.AggBuckets, len(c0.HsHist))
	}
	if a.HandshakeHist[5] != 3 || a.DwellHist[7] != 1 {
		t.Errorf("hist sums %d %d", a.HandshakeHist[5], a.DwellHist[7])
	}
}
