package verify

import (
	"fmt"
	"regexp"
	"time"
)

// The protocol's one RFC 3339 profile: four-digit year, seconds, an optional fraction of 1 to 9 digits, and Z or
// a numeric offset; within year 1 to 9999 once in UTC.
var timeProfile = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

var (
	earliestTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	latestTime   = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// ParseTime reads a protocol time. Fractions are kept to the microsecond, as the reference keeps them.
func ParseTime(text string) (time.Time, error) {
	if !timeProfile.MatchString(text) {
		return time.Time{}, fmt.Errorf("%.40q is not an RFC 3339 time of the protocol's profile", text)
	}
	if zone := text[len(text)-6:]; zone[0] == '+' || zone[0] == '-' {
		if zone[1:3] > "23" || zone[4:6] > "59" {
			return time.Time{}, fmt.Errorf("%.40q has an offset outside -23:59..+23:59", text)
		}
	}
	parsed, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("%.40q: %v", text, err)
	}
	if parsed.Year() < 1 {
		return time.Time{}, fmt.Errorf("%.40q is before year 1", text)
	}
	parsed = parsed.UTC().Truncate(time.Microsecond)
	if parsed.Before(earliestTime) || parsed.After(latestTime) {
		return time.Time{}, fmt.Errorf("%.40q is out of range", text)
	}
	return parsed, nil
}
