package h1

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bodyBufLimit is how much body a handler may write without a
// Content-Length before the response goes out chunked; under it, the loop
// counts the body and sends a Content-Length, as net/http does.
const bodyBufLimit = 16 << 10

// sniffLen is what http.DetectContentType reads.
const sniffLen = 512

// response is the http.ResponseWriter of one request. It keeps net/http's
// rules: headers go out at the first write or flush (Content-Type sniffed
// when missing, Date added), a body without a Content-Length is counted
// when it is short and chunked when not, HEAD and 304 send no body, a
// write past the declared length fails with http.ErrContentLength, and a
// body left short of it ends the connection so the client sees the cut.
type response struct {
	c      *conn
	header http.Header

	status      int
	wroteHeader bool // the handler's status is set
	headerDone  bool // the status line and headers are queued or sent
	bodyAllowed bool
	head        bool
	chunked     bool
	cl          int64 // declared Content-Length, or -1
	written     int64
	err         error // the connection failed; later writes fail with it
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		return // informational responses are not sent (no handler here uses them)
	}
	w.wroteHeader = true
	w.status = code
	w.bodyAllowed = code != http.StatusNoContent && code != http.StatusNotModified
	if v := w.header["Content-Length"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.head {
		// Nothing is sent; the start is kept to sniff a missing
		// Content-Type from, as net/http does for HEAD too.
		if c := w.c; !w.headerDone && len(c.body) < sniffLen {
			c.body = append(c.body, p[:min(len(p), sniffLen-len(c.body))]...)
		}
		return len(p), nil
	}
	if !w.headerDone {
		if w.cl >= 0 {
			w.writeHeader(p)
		} else {
			c := w.c
			if len(c.body)+len(p) <= bodyBufLimit {
				c.body = append(c.body, p...)
				return len(p), nil
			}
			w.startChunked()
		}
	}
	if err := w.send(p); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// startChunked sends the headers of a body of open length, chunked, and
// what was held back of it.
func (w *response) startChunked() {
	c := w.c
	w.chunked = true
	w.writeHeader(c.body)
	if len(c.body) > 0 {
		w.err = w.send(c.body)
		c.body = c.body[:0]
	}
}

// send queues body bytes, in a chunk when chunked.
func (w *response) send(p []byte) error {
	c := w.c
	if !w.chunked {
		return c.put(p)
	}
	c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
	c.out = append(c.out, "\r\n"...)
	if err := c.put(p); err != nil {
		return err
	}
	c.out = append(c.out, "\r\n"...)
	return nil
}

// Flush sends the headers and what is queued (http.Flusher).
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerDone {
		if w.cl < 0 && w.bodyAllowed && !w.head {
			w.startChunked()
		} else {
			w.writeHeader(nil)
		}
	}
	if w.err == nil {
		w.err = w.c.flush()
	}
}

// FlushError is Flush with its error (for http.ResponseController).
func (w *response) FlushError() error {
	w.Flush()
	return w.err
}

func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// ReadFrom sends a file with sendfile when the length is declared (as
// http.ServeContent does); anything else is copied through Write.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_, typed := w.header["Content-Type"]
	rf, ok := w.c.nc.(io.ReaderFrom)
	if !ok || !typed || w.head || !w.bodyAllowed || w.cl < 0 || w.err != nil {
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		return io.CopyBuffer(writerOnly{w}, src, *buf)
	}
	remaining := w.cl - w.written
	lr, ok := src.(*io.LimitedReader)
	if !ok || lr.N > remaining {
		lr = &io.LimitedReader{R: src, N: remaining}
	}
	if !w.headerDone {
		w.writeHeader(nil)
	}
	if err := w.c.flush(); err != nil {
		w.err = err
		return 0, err
	}
	n, err := rf.ReadFrom(lr)
	w.written += n
	if err != nil {
		w.err = err
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// finish ends the response after the handler returned.
func (w *response) finish() {
	c := w.c
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerDone {
		// A HEAD gets the length its GET would have (a GET past
		// bodyBufLimit would have been chunked).
		if w.cl < 0 && w.bodyAllowed && (!w.head || w.written > 0 && w.written <= bodyBufLimit) {
			w.cl = w.written
			w.header["Content-Length"] = []string{strconv.FormatInt(w.written, 10)}
		}
		w.writeHeader(c.body)
		if len(c.body) > 0 && w.err == nil && !w.head {
			w.err = c.put(c.body)
		}
		c.body = c.body[:0]
	}
	if w.chunked {
		c.out = append(c.out, "0\r\n\r\n"...)
	}
	if w.bodyAllowed && !w.head && w.cl >= 0 && w.written < w.cl {
		c.closeAfter = true // the client must see that the body is short
	}
	if w.err == nil {
		w.err = c.flush()
	}
	if w.err != nil {
		c.closeAfter = true
	}
}

// writeHeader queues the status line and the headers; sniff is the start
// of the body, for a missing Content-Type.
func (w *response) writeHeader(sniff []byte) { w.writeHeaderWith(sniff, nil) }

// writeHeaderWith is writeHeader with prepared header lines after the
// map's.
func (w *response) writeHeaderWith(sniff, prepared []byte) {
	w.headerDone = true
	c := w.c
	h := w.header
	if _, ok := h["Content-Type"]; !ok && w.bodyAllowed && len(sniff) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(sniff)}
	}
	if cv, ok := h["Connection"]; ok {
		for _, v := range cv {
			if strings.Contains(strings.ToLower(v), "close") {
				c.closeAfter = true
			}
		}
	}
	if c.s.closing.Load() {
		c.closeAfter = true
	}
	out := append(c.out, statusLine(w.status)...)
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = append(out, httpDate()...)
		out = append(out, "\r\n"...)
	}
	if w.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	if c.closeAfter {
		if _, ok := h["Connection"]; !ok {
			out = append(out, "Connection: close\r\n"...)
		}
	}
	out = AppendHeader(out, h)
	out = append(out, prepared...)
	c.out = append(out, "\r\n"...)
}

// AppendHeader appends h's fields as header lines, as the loop sends them
// (Transfer-Encoding and invalid names left out, CR and LF in values made
// spaces): for a response prepared once and sent many times (see
// WritePrepared).
func AppendHeader(out []byte, h http.Header) []byte {
	for k, vv := range h {
		if k == "Transfer-Encoding" || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	return out
}

// WritePrepared sends a complete 200 response whose header lines were
// rendered once (by AppendHeader, Content-Length among them): the status
// line, Date, the fields in Header() (what the server adds per request,
// such as a request id), prepared, then body, in one write with what is
// queued. It is the whole response: the handler writes nothing else.
func (w *response) WritePrepared(prepared, body []byte) error {
	if w.wroteHeader {
		return http.ErrBodyNotAllowed
	}
	w.WriteHeader(http.StatusOK)
	w.cl = int64(len(body))
	w.writeHeaderWith(nil, prepared)
	if w.head {
		return nil
	}
	w.written = w.cl
	if err := w.send(body); err != nil {
		w.err = err
		return err
	}
	return nil
}

// appendValue appends a field value with CR and LF made spaces (as
// net/http does: a value cannot split the response).
func appendValue(out []byte, v string) []byte {
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		return append(out, strings.TrimSpace(v)...)
	}
	start := len(out)
	out = append(out, strings.TrimSpace(v)...)
	for i := start; i < len(out); i++ {
		if out[i] == '\r' || out[i] == '\n' {
			out[i] = ' '
		}
	}
	return out
}

var statusLines [1000]string

func init() {
	for code := 100; code < 1000; code++ {
		text := http.StatusText(code)
		if text == "" {
			text = "status code " + strconv.Itoa(code)
		}
		statusLines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
	}
}

func statusLine(code int) string { return statusLines[code] }

type dateStamp struct {
	sec int64
	b   []byte
}

var dateNow atomic.Pointer[dateStamp]

// httpDate is the Date header's value, made once a second.
func httpDate() []byte {
	now := time.Now()
	if d := dateNow.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateStamp{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateNow.Store(d)
	return d.b
}
