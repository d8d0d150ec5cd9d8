package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

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

func FuzzParseFlags(f *testing.F) {
	f.Add("--pid", "1")
	f.Add("--port", "65535")
	f.Add("--format", "text")
	f.Fuzz(func(t *testing.T, name, value string) {
		_, _ = parseFlags([]string{name, value}, io.Discard)
	})
}
