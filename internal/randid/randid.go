// Package randid makes short random ids: unique enough to tell requests
// (in the logs) and processes (in Redis messages) apart, not secrets, so
// they come from the fast per-thread generator.
package randid

import "math/rand/v2"

// New is 16 hex digits.
func New() string {
	var b [16]byte
	const hexdigits = "0123456789abcdef"
	v := rand.Uint64()
	for i := range b {
		b[i] = hexdigits[v>>(4*i)&0xf]
	}
	return string(b[:])
}
