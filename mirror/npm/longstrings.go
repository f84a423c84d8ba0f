package npm

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// npm publish sends the tarball base64-encoded inside the JSON document.
// To decode the document without holding the tarball in memory, the body
// is spooled to a file and read through longStrings, which passes the
// JSON on unchanged except that every string longer than a limit becomes
// "\u0000long:<n>"; the n-th such string's bytes stay in the file, at the
// offset and length recorded, to be streamed from there (the attachment)
// or put back (restore: a README is kept whole). A string whose raw form
// starts with \u0000 is taken as long whatever its length, so that every
// decoded string that starts with NUL is a placeholder, never the
// client's own.

// longString is where a long JSON string's content is in the spool.
type longString struct {
	Offset, Length int64
}

// longPrefix starts a placeholder as decoded; rawLongPrefix as written.
const (
	longPrefix    = "\x00long:"
	rawLongPrefix = `\u0000long:`
	rawNUL        = `\u0000`
)

// longStrings filters a JSON stream (see above).
type longStrings struct {
	r     *bufio.Reader
	limit int
	off   int64 // offset in the source of the next byte read
	out   []byte
	found []longString

	inString bool
	escaped  bool
	buf      []byte // content of the current string, while shorter than limit
	skipping bool   // the current string is long: its bytes are not passed on
	start    int64
}

func newLongStrings(r io.Reader, limit int) *longStrings {
	return &longStrings{r: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

func (l *longStrings) Read(p []byte) (int, error) {
	for len(l.out) == 0 {
		c, err := l.r.ReadByte()
		if err != nil {
			if l.inString && err == io.EOF {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		l.off++
		l.step(c)
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}

func (l *longStrings) step(c byte) {
	if !l.inString {
		l.out = append(l.out, c)
		if c == '"' {
			l.inString, l.escaped, l.skipping, l.buf = true, false, false, l.buf[:0]
			l.start = l.off // the content starts after the quote
		}
		return
	}
	end := !l.escaped && c == '"'
	l.escaped = !l.escaped && c == '\\'
	if end {
		l.inString = false
		if l.skipping {
			l.found = append(l.found, longString{Offset: l.start, Length: l.off - 1 - l.start})
			l.out = append(l.out, rawLongPrefix+strconv.Itoa(len(l.found)-1)+`"`...)
			return
		}
		l.out = append(append(l.out, l.buf...), '"')
		return
	}
	if l.skipping {
		return
	}
	l.buf = append(l.buf, c)
	if len(l.buf) > l.limit || len(l.buf) == len(rawNUL) && string(l.buf) == rawNUL {
		l.skipping, l.buf = true, l.buf[:0]
	}
}

// long returns the long string a value names (a placeholder), if it does.
func (l *longStrings) long(v string) (longString, bool) {
	if len(v) <= len(longPrefix) || v[:len(longPrefix)] != longPrefix {
		return longString{}, false
	}
	n, err := strconv.Atoi(v[len(longPrefix):])
	if err != nil || n < 0 || n >= len(l.found) {
		return longString{}, false
	}
	return l.found[n], true
}

func (s longString) String() string { return fmt.Sprintf("%d bytes at %d", s.Length, s.Offset) }

// restore puts the long strings a JSON value's placeholders name back
// (read from src, the spooled body), as long as the result stays within
// max bytes.
func (l *longStrings) restore(raw []byte, src io.ReaderAt, max int) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			out = append(out, c)
			if c == '"' {
				inString, escaped = true, false
				if rest := raw[i+1:]; len(rest) > len(rawLongPrefix) && string(rest[:len(rawLongPrefix)]) == rawLongPrefix {
					j := i + 1 + len(rawLongPrefix)
					k := j
					for k < len(raw) && '0' <= raw[k] && raw[k] <= '9' {
						k++
					}
					n, err := strconv.Atoi(string(raw[j:k]))
					if err != nil || k >= len(raw) || raw[k] != '"' || n >= len(l.found) {
						return nil, fmt.Errorf("malformed placeholder")
					}
					ls := l.found[n]
					if len(out)+int(ls.Length) > max {
						return nil, errTooLong
					}
					start := len(out)
					out = append(out, make([]byte, ls.Length)...)
					if _, err := src.ReadAt(out[start:], ls.Offset); err != nil {
						return nil, err
					}
					out = append(out, '"')
					i, inString = k, false
				}
			}
			continue
		}
		out = append(out, c)
		end := !escaped && c == '"'
		escaped = !escaped && c == '\\'
		if end {
			inString = false
		}
		if len(out) > max {
			return nil, errTooLong
		}
	}
	return out, nil
}

var errTooLong = fmt.Errorf("longer than the limit")
