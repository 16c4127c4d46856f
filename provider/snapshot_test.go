package provider

import (
	"strings"
	"testing"
)

func TestCheckSnapshotName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"clean", true},
		{"before-upgrade.2", true},
		{"push_1767323045_0042", true},
		{"A", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-flag", false},
		{"a/b", false},
		{"../escape", false},
		{"with space", false},
		{"tab\tname", false},
		{"new\nline", false},
		{"ünïcode", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSnapshotName(tc.name)
			if (err == nil) != tc.ok {
				t.Errorf("CheckSnapshotName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}
