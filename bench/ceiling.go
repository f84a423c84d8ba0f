package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// The ceiling: a minimal Go server that answers every request on a
// connection with the same bytes held in memory, one goroutine per
// connection and one write per response (the proxy's pattern for a
// replayed document), and nothing else: no routing, no headers read, no
// metrics. Measured against nginx in the same rounds as the proxy's rows,
// it shows what the proxy's design can reach at best on the machine of
// the run: the proxy's own work is the difference between the two rows.
// It runs as a child process (this binary with -ceiling-serve), as the
// proxy does, so that it shares no runtime with the fake upstreams.

// ceilingServe serves file's bytes as a 200 response to every request on
// addr, until killed.
func ceilingServe(addr, file string) error {
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	resp = append(resp, body...)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go ceilingConn(c, resp)
	}
}

// ceilingConn answers each request (each header block's end) read from c.
func ceilingConn(c net.Conn, resp []byte) {
	defer c.Close()
	buf := make([]byte, 8<<10)
	held := 0 // the start of a request end split across two reads
	for {
		n, err := c.Read(buf[held:])
		if err != nil {
			return
		}
		data := buf[:held+n]
		k := bytes.Count(data, []byte("\r\n\r\n"))
		for range k {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
		// Keep what follows the last request's end, up to the three
		// bytes that may begin the next one's.
		rest := data
		if i := bytes.LastIndex(data, []byte("\r\n\r\n")); i >= 0 {
			rest = data[i+4:]
		}
		held = copy(buf, rest[max(0, len(rest)-3):])
	}
}

// startCeiling starts the ceiling server with body and returns its URL.
func (e *env) startCeiling(body []byte) (string, error) {
	file := filepath.Join(e.dir, "ceiling.body")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	if err := e.start("ceiling", exec.Command(self, "-ceiling-serve", file, "-ceiling-addr", addr)); err != nil {
		return "", err
	}
	u := "http://" + addr + "/"
	return u, waitHTTP(u)
}
