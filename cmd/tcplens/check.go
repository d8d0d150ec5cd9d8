package main

import (
	"context"
	"io"
)

func runCheck(ctx context.Context, opts options, stdout, stderr io.Writer) error {
	return nil
}
