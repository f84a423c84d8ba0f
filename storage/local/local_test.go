package local_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
