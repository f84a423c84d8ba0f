// Package access keeps the records of which stored files were served on
// which day, for retention (mirror-proxy gc). A record is one create-only
// object, <prefix>/<day>/<replica>-<unix nanoseconds>.gz: the keys served
// that day, one per line, gzipped. Replicas write them in batches (see
// fetch's access log), so recording costs one storage write per replica
// per few minutes, none per request.
package access

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Day is the UTC day of t as records name it ("2026-12-07").
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Write stores one record of keys served on day by replica.
func Write(ctx context.Context, st storage.Store, prefix, day, replica string, keys []string, now time.Time) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, k := range keys {
		zw.Write([]byte(k + "\n"))
	}
	if err := zw.Close(); err != nil {
		return err
	}
	key := storage.Join(prefix, day, replica+"-"+strconv.FormatInt(now.UnixNano(), 10)+".gz")
	return st.Put(ctx, key, bytes.NewReader(buf.Bytes()), storage.PutOptions{Size: int64(buf.Len()), CreateOnly: true, ContentType: "application/gzip"})
}

// maxRecordBytes bounds one record as read (decompressed).
const maxRecordBytes = 256 << 20

// Read returns, for every key served on since or a later day, the last
// such day.
func Read(ctx context.Context, st storage.Store, prefix, since string) (map[string]string, error) {
	var records []string
	err := st.List(ctx, strings.TrimSuffix(prefix, "/")+"/", func(i storage.Info) error {
		day, _, _ := strings.Cut(strings.TrimPrefix(i.Key, strings.TrimSuffix(prefix, "/")+"/"), "/")
		if day >= since {
			records = append(records, i.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the access records: %w", err)
	}
	last := map[string]string{}
	for _, key := range records {
		day, _, _ := strings.Cut(strings.TrimPrefix(key, strings.TrimSuffix(prefix, "/")+"/"), "/")
		if err := readRecord(ctx, st, key, func(k string) {
			if last[k] < day {
				last[k] = day
			}
		}); err != nil {
			return nil, fmt.Errorf("access record %s: %w", key, err)
		}
	}
	return last, nil
}

func readRecord(ctx context.Context, st storage.Store, key string, fn func(string)) error {
	rc, _, err := st.Get(ctx, key, storage.Whole)
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(io.LimitReader(zr, maxRecordBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if k := sc.Text(); k != "" {
			fn(k)
		}
	}
	return sc.Err()
}
