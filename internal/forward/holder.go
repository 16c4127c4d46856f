package forward

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Holder names the process holding a rule's host port, for messages: its
// pid and command line, or 0 and nil when it cannot be found (another
// user's process, a port bound a moment ago). It reads /proc: the
// listening sockets of the rule's protocol on its port, then the process
// with that socket open.
func Holder(r Rule) (int, []string) {
	inodes := map[string]bool{}
	for _, table := range []string{string(r.Protocol), string(r.Protocol) + "6"} {
		f, err := os.Open(filepath.Join("/proc/net", table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			_, portHex, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil || int(port) != r.HostPort {
				continue
			}
			if r.Protocol == TCP && fields[3] != "0A" { // LISTEN
				continue
			}
			inodes["socket:["+fields[9]+"]"] = true
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, nil
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && inodes[link] {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				return pid, strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
			}
		}
	}
	return 0, nil
}
