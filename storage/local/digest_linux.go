package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// digestAttr is the extended attribute that keeps an object's digest.
const digestAttr = "user.mirror-proxy.digest"

// setDigest records d on the file at path; a filesystem without user
// extended attributes records nothing (reads are then not verified).
func setDigest(path, d string) {
	if d != "" {
		_ = unix.Setxattr(path, digestAttr, []byte(d), 0)
	}
}

// digestOf is the digest recorded on the file at path ("" : none).
func digestOf(path string) string {
	var buf [160]byte
	n, err := unix.Getxattr(path, digestAttr, buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// digestOfFile is digestOf for an open file (the version it opened).
func digestOfFile(f *os.File) string {
	var buf [160]byte
	n, err := unix.Fgetxattr(int(f.Fd()), digestAttr, buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}
