package policy

import (
	"testing"
	"time"
)

func TestCooldown(t *testing.T) {
	c := Cooldown{Age: 3 * 24 * time.Hour, Exempt: []string{"acme/*", "requests"}}
	if c.Active("acme/lib") || c.Active("requests") || !c.Active("symfony/console") || (Cooldown{}).Active("x") {
		t.Error("Active")
	}
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	if v := c.Judge(now.Add(-4*24*time.Hour), now); v.Hidden {
		t.Error("a 4-day-old version is hidden")
	}
	v := c.Judge(now.Add(-24*time.Hour), now)
	if !v.Hidden || !v.Until.Equal(now.Add(48*time.Hour)) {
		t.Errorf("a 1-day-old version: %+v", v)
	}
	if !c.Judge(time.Time{}, now).Hidden || (Cooldown{Age: time.Hour, AllowUnknown: true}).Judge(time.Time{}, now).Hidden {
		t.Error("unknown publish times")
	}
	var w Window
	w.Add(v)
	w.Add(c.Judge(now.Add(-2*24*time.Hour), now))
	if !w.Next.Equal(now.Add(24*time.Hour)) || !w.Valid(now) || w.Valid(now.Add(25*time.Hour)) {
		t.Errorf("window: %v", w.Next)
	}
	for in, want := range map[string]time.Duration{"3d": 72 * time.Hour, "36h": 36 * time.Hour, "0d": 0} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"3 days", "-1d", "x", "1.5d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) took it", bad)
		}
	}
}
