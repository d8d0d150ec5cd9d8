package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// maxRingBytes caps --ring-buffer-size: 1 GiB of locked kernel memory is
// already far more than any host should give a tracer.
const maxRingBytes = 1 << 30

// parseRingSize validates --ring-buffer-size: a power of two in bytes, at
// least the page size (the kernel's own rule for BPF ring buffers).
func parseRingSize(s string) (uint32, error) {
	page := uint64(os.Getpagesize())
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < page || n > maxRingBytes || n&(n-1) != 0 {
		return 0, fmt.Errorf("invalid --ring-buffer-size %q: want a power of two from %d (the page size) to %d bytes", s, page, maxRingBytes)
	}
	return uint32(n), nil
}

// rejectEmpty refuses string flags given explicitly with an empty value
// (--pid= would otherwise silently mean "every process").
func rejectEmpty(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			return
		}
		if f.Value.String() == "" {
			err = usageError{fmt.Errorf("invalid --%s: empty value", f.Name)}
		}
	})
	return err
}

// oneLine escapes control characters in the flag package's messages, which
// quote user input verbatim: an error must stay one line on stderr.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.ContainsFunc(msg, unicode.IsControl) {
		return err
	}
	q := strconv.QuoteToGraphic(msg)
	return errors.New(q[1 : len(q)-1])
}
