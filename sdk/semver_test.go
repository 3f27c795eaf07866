package sdk_test

import (
	"testing"

	"github.com/synchron-io/synchron/sdk"
)

func TestParseVersionValidity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    string
		want bool
	}{
		{"0.1.0", true},
		{"1.2.3", true},
		{"10.20.30", true},
		{"1.0.0-alpha", true},
		{"1.0.0-alpha.1", true},
		{"1.0.0-0.3.7", true},
		{"1.0.0-x.7.z.92", true},
		{"1.0.0-x-y-z.--", true},
		{"1.0.0+20130313144700", true},
		{"1.0.0-beta+exp.sha.5114f85", true},
		{"1.0.0+001", true}, // leading zeros are allowed in build metadata
		{"", false},
		{"1", false},
		{"1.2", false},
		{"1.2.3.4", false},
		{"v1.2.3", false},
		{"01.2.3", false},
		{"1.02.3", false},
		{"1.2.03", false},
		{"1.2.3-", false},
		{"1.2.3+", false},
		{"1.2.3-01", false},
		{"1.2.3-alpha..1", false},
		{"1.2.3-alpha_1", false},
		{"1.2.-3", false},
		{" 1.2.3", false},
		{"a.b.c", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			t.Parallel()
			if _, got := sdk.ParseVersion(tt.v); got != tt.want {
				t.Fatalf("ParseVersion(%q) ok = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
