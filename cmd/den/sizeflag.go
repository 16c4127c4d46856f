package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/config"
)

// maxSizeFlag is box add's --max-size: the most a box may unpack to. A
// value that is not a size is a usage error when the flags are read.
var maxSizeFlag = &cli.StringFlag{
	Name:  "max-size",
	Usage: "refuse a box that unpacks to more than `SIZE` (default 16G; K, M, G and T are powers of 1024)",
	Action: func(_ *cli.Context, v string) error {
		_, err := parseMaxSize(v)
		return err
	},
}

// maxSize is --max-size in bytes, 0 (the store's default) when unset.
func maxSize(cliCtx *cli.Context) int64 {
	n, _ := parseMaxSize(cliCtx.String(maxSizeFlag.Name))
	return n
}

func parseMaxSize(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := config.ParseSize(v)
	if err == nil && n <= 0 {
		err = fmt.Errorf("%q is not a positive size", v)
	}
	if err != nil {
		return 0, usageError{fmt.Errorf("--max-size: %w", err)}
	}
	return n, nil
}
