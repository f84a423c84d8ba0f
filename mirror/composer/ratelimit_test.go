package composer

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// GitHub's rate limit (403, X-RateLimit-Remaining: 0) becomes a 429 with
// the wait until the reset; any other 403 stays one.
func TestGitHubRateLimitIsA429(t *testing.T) {
	h := http.Header{}
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(90*time.Second).Unix(), 10))
	resp := &http.Response{StatusCode: 403, Header: h}
	githubRateLimit(resp)
	if resp.StatusCode != 429 {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 80 || ra > 92 {
		t.Errorf("Retry-After %q, want about 90", resp.Header.Get("Retry-After"))
	}
	other := &http.Response{StatusCode: 403, Header: http.Header{}}
	githubRateLimit(other)
	if other.StatusCode != 403 {
		t.Errorf("a plain 403 became %d", other.StatusCode)
	}
}
