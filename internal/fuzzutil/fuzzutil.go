// Package fuzzutil helps den's fuzz targets: it turns an input that hangs
// into a failure go test keeps.
package fuzzutil

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

// HangLimit is how long one fuzz input may run.
const HangLimit = 10 * time.Second

// Watchdog makes the fuzzing worker panic when the input of t runs longer
// than HangLimit; go test then keeps the input under testdata/fuzz as a
// failure (a hang alone is never reported: the fuzzer only stops making
// progress). It arms only in fuzzing workers, never in a plain go test
// run of the seeds. Call the returned function when the input is done:
//
//	defer fuzzutil.Watchdog(t)()
func Watchdog(t *testing.T) (stop func()) {
	if f := flag.Lookup("test.fuzzworker"); f == nil || f.Value.String() != "true" {
		return func() {}
	}
	name := t.Name()
	tm := time.AfterFunc(HangLimit, func() {
		panic(fmt.Sprintf("%s: one input ran for more than %v", name, HangLimit))
	})
	return func() { tm.Stop() }
}
