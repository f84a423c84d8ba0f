// Package upload reads what a client publishes: a multipart form (PyPI's
// and Composer's uploads) or a whole body (npm publish's JSON, a conda
// package, a NAR), spooled to a temporary file under the server's limits
// (UPLOAD_MAX_BYTES, the body's idle time), never held in memory. The
// ecosystems' publish handlers (mirror/<ecosystem>/publish.go) read with
// it, check what they got, and hand it to their hosted.Repo.
package upload

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"time"

	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// DefaultMax is UPLOAD_MAX_BYTES' default.
const DefaultMax = 512 << 20

// Limits bound what one upload may be and where it is spooled.
type Limits struct {
	Max  int64         // bytes of the file (larger: 413)
	Idle time.Duration // the longest silence while the body arrives
	Dir  string        // where spools go ("" : the system's temporary directory)
}

// Form is a multipart upload as read: its text fields and its one file.
type Form struct {
	Fields   map[string]string
	File     *hosted.Spooled
	Filename string
}

// Close discards the spooled file.
func (f *Form) Close() {
	if f.File != nil {
		f.File.Remove()
	}
}

// Bounds on what an upload's form may hold besides the file.
const (
	maxFieldBytes = 64 << 10
	maxFields     = 256
)

// idleBody is a request body whose read deadline can become an idle
// limit (the server's guard makes bodies so).
type idleBody interface{ SetIdle(time.Duration) }

func (l Limits) tooLarge(n int64) error {
	if n >= 0 {
		return httpx.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes is larger than UPLOAD_MAX_BYTES (%d)", n, l.Max))
	}
	return httpx.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than UPLOAD_MAX_BYTES (%d)", l.Max))
}

func (l Limits) spool(r io.Reader) (*hosted.Spooled, error) {
	if l.Dir != "" {
		_ = os.MkdirAll(l.Dir, 0o700)
	}
	return hosted.Spool(r, l.Dir, l.Max)
}

// Body copies a request body (an upload that is not multipart, such as
// npm publish's JSON) to a temporary file: Max bytes at most (413), as
// long as it keeps arriving (Idle bounds its silences).
func (l Limits) Body(w http.ResponseWriter, r *http.Request) (*hosted.Spooled, error) {
	if r.ContentLength > l.Max {
		return nil, l.tooLarge(r.ContentLength)
	}
	if db, ok := r.Body.(idleBody); ok {
		db.SetIdle(l.Idle)
	}
	f, err := l.spool(http.MaxBytesReader(w, r.Body, l.Max))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, hosted.ErrTooLarge) {
		return nil, l.tooLarge(-1)
	}
	if err != nil {
		return nil, httpx.BadRequest("the upload was not received completely: %v", err)
	}
	return f, nil
}

// Form reads a multipart/form-data request: fileField's part is spooled
// (Max bytes at most, else 413), other parts kept as text. The body may
// take as long as it needs while it keeps arriving: Idle bounds its
// silences.
func (l Limits) Form(w http.ResponseWriter, r *http.Request, fileField string) (*Form, error) {
	if r.ContentLength > l.Max+(1<<20) {
		return nil, l.tooLarge(r.ContentLength)
	}
	if db, ok := r.Body.(idleBody); ok {
		db.SetIdle(l.Idle)
	}
	r.Body = http.MaxBytesReader(w, r.Body, l.Max+(1<<20))
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return nil, httpx.BadRequest("expected a multipart/form-data upload with the file in the field %q", fileField)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, httpx.BadRequest("malformed multipart body: %v", err)
	}
	u := &Form{Fields: map[string]string{}}
	if err := l.readParts(mr, u, fileField); err != nil {
		u.Close()
		var mbe *http.MaxBytesError
		var he *httpx.HTTPError
		switch {
		case errors.As(err, &mbe) || errors.Is(err, hosted.ErrTooLarge):
			return nil, l.tooLarge(-1)
		case errors.As(err, &he):
			return nil, he
		}
		return nil, httpx.BadRequest("the upload was not received completely: %v", err)
	}
	return u, nil
}

// readParts reads the parts of a form into u.
func (l Limits) readParts(mr *multipart.Reader, u *Form, fileField string) error {
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n >= maxFields {
			return httpx.BadRequest("too many form fields (at most %d)", maxFields)
		}
		name := p.FormName()
		if name == fileField {
			if u.File != nil {
				return httpx.BadRequest("more than one %q part", fileField)
			}
			if u.File, err = l.spool(p); err != nil {
				return err
			}
			u.Filename = p.FileName()
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return err
		}
		if len(b) > maxFieldBytes {
			return httpx.BadRequest("form field %q is larger than %d bytes", httpx.Truncate(name, 100), maxFieldBytes)
		}
		if _, dup := u.Fields[name]; !dup { // repeated fields (classifiers): the first is kept
			u.Fields[name] = string(b)
		}
	}
	if u.File == nil {
		return httpx.BadRequest("the upload has no %q file part", fileField)
	}
	if u.File.Size == 0 {
		return httpx.BadRequest("the uploaded file is empty")
	}
	return nil
}
