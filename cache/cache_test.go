package cache

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestMemoryBoundedInBytes(t *testing.T) {
	m := NewMemory[string](100)
	m.Add("a", "a", 40)
	m.Add("b", "b", 40)
	m.Get("a") // a is now more recent than b
	m.Add("c", "c", 40)
	if _, ok := m.Get("b"); ok {
		t.Fatal("least recently used entry b survived going over the byte budget")
	}
	if _, ok := m.Get("a"); !ok {
		t.Fatal("recently used entry a was evicted")
	}
	if m.Used() != 80 {
		t.Fatalf("Used = %d, want 80", m.Used())
	}
	m.Add("huge", "x", 1000)
	if _, ok := m.Get("huge"); ok || m.Used() != 80 {
		t.Fatal("a value larger than the whole budget was kept or evicted others")
	}
	m.Add("a", "a2", 10) // replacing re-weighs
	if v, _ := m.Get("a"); v != "a2" || m.Used() != 50 {
		t.Fatalf("after replace: %q, used %d", v, m.Used())
	}
}

func TestDiskEvictsLeastRecentlyUsedAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDisk(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string, n int) {
		if err := d.Put(k, strings.NewReader(strings.Repeat("x", n))); err != nil {
			t.Fatal(err)
		}
	}
	put("m/a", 40)
	put("m/b", 40)
	if f, _, ok := d.Open("m/a"); ok {
		f.Close()
	}
	put("m/c", 40)
	if _, _, ok := d.Open("m/b"); ok {
		t.Fatal("least recently used file survived")
	}
	if _, err := os.Stat(dir + "/m/b"); !os.IsNotExist(err) {
		t.Fatal("evicted file still on disk")
	}
	put("m/a", 10) // overwrite keeps the file
	f, size, ok := d.Open("m/a")
	if !ok || size != 10 {
		t.Fatalf("overwritten entry: ok=%v size=%d", ok, size)
	}
	f.Close()
	if d.Used() != 50 {
		t.Fatalf("Used = %d, want 50", d.Used())
	}
	if err := d.Put("../escape", strings.NewReader("x")); err == nil {
		t.Fatal("a key escaping the directory was accepted")
	}
	d2, err := NewDisk(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Used() != 50 {
		t.Fatalf("after restart Used = %d, want 50", d2.Used())
	}
	if f, _, ok := d2.Open("m/c"); !ok {
		t.Fatal("file from the earlier run not adopted")
	} else {
		f.Close()
	}
}

func TestDiskPutFileLinksACompleteFile(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDisk(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	src := dir + "/.tmp/spool"
	os.WriteFile(src, []byte("verified bytes"), 0o644)
	if err := d.PutFile("a/b/file.whl", src); err != nil {
		t.Fatal(err)
	}
	f, size, ok := d.Open("a/b/file.whl")
	if !ok || size != 14 {
		t.Fatalf("Open after PutFile: %v %d", ok, size)
	}
	f.Close()
	entries, _ := os.ReadDir(dir + "/.tmp")
	if len(entries) != 1 {
		t.Errorf("PutFile left temp files behind: %v", entries)
	}
}

// Files being written count against the limit: reserving room evicts
// cached files first.
func TestDiskReserveMakesRoom(t *testing.T) {
	d, err := NewDisk(t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := d.Put(fmt.Sprintf("k/%d", i), strings.NewReader(strings.Repeat("x", 200))); err != nil {
			t.Fatal(err)
		}
	}
	release, ok := d.Reserve(500)
	if !ok || d.Used() > 500 {
		t.Fatalf("after reserving 500 of 1000 bytes, %d bytes stay cached", d.Used())
	}
	if _, ok := d.Reserve(2000); ok {
		t.Errorf("a reservation larger than the cache was granted")
	}
	release()
	release()
	if err := d.Put("k/new", strings.NewReader(strings.Repeat("y", 400))); err != nil || d.Used() > 1000 {
		t.Fatalf("after the release: %v, %d used", err, d.Used())
	}
}
