package main

import "testing"

func TestMaxProcs(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if n := maxProcs(getenv); n != 1 {
		t.Errorf("default: %d, want 1", n)
	}
	env["GOMAXPROCS"] = "4"
	if n := maxProcs(getenv); n != 0 {
		t.Errorf("with GOMAXPROCS set: %d, want 0 (keep the operator's)", n)
	}
}
