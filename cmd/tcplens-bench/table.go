package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printTable prints the report for people: one row per mode, then each
// mode's kernel cost per BPF program.
func printTable(w io.Writer, rep *report) {
	c := rep.Config
	if c.SoakSeconds > 0 {
		fmt.Fprintf(w, "\ntcplens soak: one traced churn of %gs per mode (no baseline: ignore overhead), ipv%d, %s closes first, %d workers; kernel %v, %v CPUs\n\n",
			c.SoakSeconds, c.Family, c.Closer, c.Workers, rep.Host["kernel"], rep.Host["cpus"])
	} else {
		fmt.Fprintf(w, "\ntcplens overhead: churn ipv%d, %s closes first, %d workers; %d baseline + %d traced rounds of %gs (ABAB); kernel %v, %v CPUs\n\n",
			c.Family, c.Closer, c.Workers, c.Rounds, c.Rounds, c.RoundSeconds, rep.Host["kernel"], rep.Host["cpus"])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tbaseline conn/s\ttraced conn/s\toverhead\tpaired (range)\tspread base/traced\tcpu-s/100k conns\t(user)\tpeak RSS\tBPF maps\tkernel ns/conn\tevents/expected\tlost\tmissed\t")
	for _, m := range rep.Modes {
		if m.Status != "ok" {
			continue
		}
		events := fmt.Sprintf("%d/%d", m.EventsOurs, m.EventsExpected)
		if m.EventsExpected == 0 {
			events = fmt.Sprintf("%d/-", m.EventsOurs)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f%%\t%.1f%% (%.1f..%.1f)\t%.0f%%/%.0f%%\t%.2f\t%.2f\t%s\t%s\t%.0f\t%s\t%d\t%d\t\n",
			m.Name, m.BaselineMedian, m.TracedMedian, m.OverheadPct, m.PairedOverheadPct, m.PairedRangePct[0], m.PairedRangePct[1], m.BaselineSpread, m.TracedSpread, m.CPUPer100k, m.UserPer100k,
			mib(m.PeakRSS), mib(m.BPFMapBytes), m.KernelNsPerConn, events, m.Lost, m.Missed)
	}
	tw.Flush()
	for i, m := range rep.Modes {
		if m.OverFloorPct == nil {
			continue
		}
		if i > 0 && rep.Modes[i-1].OverFloorPct == nil {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s above the floor (the same hooks, doing nothing): %+.1f points paired overhead", m.Name, *m.OverFloorPct)
		if m.KernelOverFloorNsPer != nil {
			fmt.Fprintf(w, ", %+.0f kernel ns/conn", *m.KernelOverFloorNsPer)
		}
		fmt.Fprintln(w)
	}
	for _, m := range rep.Modes {
		if m.Status != "ok" {
			fmt.Fprintf(w, "\n%s: %s: %s\n", m.Name, m.Status, oneLine(m.Reason))
			continue
		}
		fmt.Fprintf(w, "\n%s: kernel cost per BPF program (bpf_stats on, in a separate traced round)\n", m.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  program\tns/run\truns/conn\tns/conn\truns\tmissed\t")
		for _, p := range m.Programs {
			fmt.Fprintf(tw, "  %s\t%.0f\t%.2f\t%.0f\t%d\t%d\t\n", p.Name, p.NsPerRun, p.RunsPerConn, p.NsPerConn, p.Runs, p.Misses)
		}
		tw.Flush()
		if m.EventsEmitted != m.EventsOurs || m.DecodeErrors > 0 || m.Untracked > 0 {
			fmt.Fprintf(w, "  tcplens counted: seen %d, emitted %d (all host traffic), decode errors %d, sockets untracked %d\n",
				m.EventsSeen, m.EventsEmitted, m.DecodeErrors, m.Untracked)
		}
		if len(m.Soak) > 0 {
			fmt.Fprintf(w, "  soak samples (elapsed: rss, peak rss, bpf map bytes, map entries):\n")
			for _, s := range m.Soak {
				fmt.Fprintf(w, "  %6.0fs: %s, %s, %s, %v\n", s.Elapsed, mib(s.RSS), mib(s.HWM), mib(s.MapMemlock), s.MapEntries)
			}
		}
	}
	fmt.Fprintln(w)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
