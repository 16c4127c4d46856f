package main

import "testing"

func TestVersionLine(t *testing.T) {
	if got := versionLine("dev", "", "5.0.2"); got != "den dev (liblxc 5.0.2)" {
		t.Errorf("without a commit: %q", got)
	}
	if got := versionLine("1.2.0+3.gabc1234", "abc1234def", "5.0.2"); got != "den 1.2.0+3.gabc1234 (commit abc1234def, liblxc 5.0.2)" {
		t.Errorf("with a commit: %q", got)
	}
}
