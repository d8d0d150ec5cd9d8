package integration

import (
	"net"
	"time"
)

// acceptAndClose accepts connections on ln and closes each at once, until
// ln is closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// churn opens and closes n connections to addr, one after another.
func churn(addr string, n int) error {
	d := tcpDialer(10 * time.Second)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}
