package hostile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
)

// TarGzBomb is a .tar.gz whose first file holds n MiB of zeros (then one
// small file, last): a few KB per MiB compressed, built from repeated
// gzip members (every gzip reader reads concatenated members as one
// stream), so that making it costs nothing.
func TarGzBomb(first string, mib int, last, lastBody string) []byte {
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Name: first, Mode: 0o644, Size: int64(mib) << 20, Typeflag: tar.TypeReg})
	tw.Flush()
	var out bytes.Buffer
	out.Write(member(hdr.Bytes()))
	zeros := member(make([]byte, 1<<20))
	for range mib {
		out.Write(zeros)
	}
	var tail bytes.Buffer
	tw = tar.NewWriter(&tail)
	tw.WriteHeader(&tar.Header{Name: last, Mode: 0o644, Size: int64(len(lastBody)), Typeflag: tar.TypeReg})
	tw.Write([]byte(lastBody))
	tw.Close()
	out.Write(member(tail.Bytes()))
	return out.Bytes()
}
