package box

import (
	"maps"
	"slices"
)

// Buildable lists the box names den can build (KnownBuild knows them),
// sorted.
func Buildable() []string { return slices.Sorted(maps.Keys(buildKnown)) }
