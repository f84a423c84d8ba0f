// Package fakekms is a stand-in for AWS KMS in tests: it answers
// GenerateDataKey and Decrypt in KMS's JSON protocol for one key id,
// keeping the data keys it made.
package fakekms

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a fake KMS with one key, KeyID.
type Server struct {
	URL      string
	KeyID    string
	Decrypts atomic.Int64 // Decrypt calls answered

	mu   sync.Mutex
	keys map[string][]byte // wrapped → key
}

// Start starts a fake KMS for keyID until the test ends.
func Start(t testing.TB, keyID string) *Server {
	f := &Server{KeyID: keyID, keys: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *Server) fail(w http.ResponseWriter, typ, msg string) {
	w.WriteHeader(400)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// ServeHTTP answers TrentService.GenerateDataKey and TrentService.Decrypt.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		KeyId          string
		KeySpec        string
		CiphertextBlob []byte
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.fail(w, "ValidationException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op := r.Header.Get("X-Amz-Target"); op {
	case "TrentService.GenerateDataKey":
		if in.KeyId != f.KeyID || in.KeySpec != "AES_256" {
			f.fail(w, "NotFoundException", "no key "+in.KeyId)
			return
		}
		key, wrapped := make([]byte, 32), make([]byte, 48)
		rand.Read(key)
		rand.Read(wrapped)
		f.keys[string(wrapped)] = key
		json.NewEncoder(w).Encode(map[string]string{"KeyId": in.KeyId,
			"Plaintext": base64.StdEncoding.EncodeToString(key), "CiphertextBlob": base64.StdEncoding.EncodeToString(wrapped)})
	case "TrentService.Decrypt":
		f.Decrypts.Add(1)
		key, ok := f.keys[string(in.CiphertextBlob)]
		switch {
		case in.KeyId != "" && in.KeyId != f.KeyID:
			f.fail(w, "IncorrectKeyException", "another key")
		case !ok:
			f.fail(w, "InvalidCiphertextException", "not a data key of this KMS")
		default:
			json.NewEncoder(w).Encode(map[string]string{"KeyId": f.KeyID, "Plaintext": base64.StdEncoding.EncodeToString(key)})
		}
	default:
		f.fail(w, "UnknownOperationException", op)
	}
}
