package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// envPrefix starts the name of the environment variable of every flag.
const envPrefix = "RYDES_"

// envName returns the environment variable that sets the named flag:
// RYDES_ followed by the name in upper snake case ("sim-max-delay" is
// RYDES_SIM_MAX_DELAY).
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// parseFlags parses args into fs, then sets every flag that was not given on
// the command line from its environment variable (see envName), if getenv
// returns a non-empty value for it: the command line wins over the
// environment, which wins over the default.
//
// Unlike fs.Parse alone, flags may follow positional arguments ("get ID
// --json"); "--" ends the flags, and fs.Args() holds the positional
// arguments afterwards. With -h or --help, fs's usage is printed to its
// output and flag.ErrHelp returned. An environment variable that is not a
// valid value of its flag is an error that names the variable.
//
// fs should be made with flag.ContinueOnError, so that errors are returned.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.NArg()
		if rest == 0 {
			break
		}
		// Parse stopped at a positional argument, or after "--", which ends
		// the flags for good.
		if used := len(args) - rest; used > 0 && args[used-1] == "--" {
			positional = append(positional, fs.Args()...)
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	// Parse again to leave only the positional arguments in fs.Args(); "--"
	// keeps any of them that looks like a flag from being taken for one.
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return err
	}
	if getenv == nil {
		return nil
	}

	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for environment variable %s (flag -%s): %w", v, name, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// longDuration is a flag.Value for a time.Duration that may also be given
// in whole days, "7d", as well as any time.ParseDuration form ("168h").
type longDuration struct{ d *time.Duration }

// byteSize is a flag.Value of a size in bytes, at least 1, written as a
// number with an optional unit: 1073741824, 1GiB, 512 MiB, 2GB.
type byteSize struct{ n *int64 }

// String implements flag.Value.
func (b byteSize) String() string {
	if b.n == nil {
		return ""
	}
	return humanize.IBytes(uint64(*b.n))
}

// Set implements flag.Value.
func (b byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n < 1 || n > math.MaxInt64 {
		return fmt.Errorf("invalid size %q: a number of bytes of at least 1, with an optional unit, e.g. 512MiB or 1GiB", s)
	}
	*b.n = int64(n)
	return nil
}

// String implements flag.Value: whole days as "Nd", else the Go form.
func (l longDuration) String() string {
	if l.d == nil {
		return ""
	}
	if day := 24 * time.Hour; *l.d > 0 && *l.d%day == 0 {
		return strconv.FormatInt(int64(*l.d/day), 10) + "d"
	}
	return l.d.String()
}

// Set implements flag.Value.
func (l longDuration) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid duration %q: days must be a whole number, e.g. 7d", s)
		}
		*l.d = time.Duration(n) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: e.g. 7d, 36h or 90m", s)
	}
	*l.d = d
	return nil
}

// prefixList is a flag.Value holding a comma-separated list of networks,
// each a CIDR prefix ("10.1.2.0/24") or a single address ("192.0.2.7").
type prefixList struct{ p *[]netip.Prefix }

// String implements flag.Value.
func (l prefixList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Set implements flag.Value: it replaces the list.
func (l prefixList) Set(v string) error {
	var out []netip.Prefix
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return fmt.Errorf("invalid network %q: want a CIDR prefix such as 10.1.2.0/24 or an address", item)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	*l.p = out
	return nil
}
