package conda

import (
	"bytes"
	"testing"
)

// A shard index that decompresses to more than 64 MiB (here 200 MiB of
// zeros in a few KB) is refused, not decoded into memory.
func TestShardIndexBombIsRefused(t *testing.T) {
	bomb := Zstd(bytes.Repeat([]byte{0}, 200<<20))
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	if out, err := Unzstd(bomb); err == nil {
		t.Errorf("a bomb decompressed to %d bytes", len(out))
	}
	if _, err := ParseShardIndex(bomb); err == nil {
		t.Error("a 200 MiB shard index was decoded")
	}
	if _, err := ParseShard(bomb); err == nil {
		t.Error("a 200 MiB shard was decoded")
	}
}
