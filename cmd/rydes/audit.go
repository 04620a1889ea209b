package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
)

const auditUsage = `Usage: rydes audit <command> [flags]

The audit log records every administrative change that succeeded: who
(the admin key's fingerprint), what, to which object, from where and when.

Commands:
  list     list audit entries, newest first

Every command takes --server (default ` + defaultServer + `), --admin-key,
--ca (a private CA to trust for an https server) and --json. The admin key is
best set as RYDES_ADMIN_KEY, the server as RYDES_SERVER and the CA as
RYDES_CA; no other flag of these commands is read from the environment.
`

const auditListUsage = `Usage: rydes audit list [flags]

Lists audit entries, newest first. When there are older ones, a last line
says how to list them.
`

// auditList runs "rydes audit list".
func auditList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newAdminFlagSet("rydes audit list", auditListUsage, stderr)
	af := addAdminFlags(fs, true)
	var (
		q      client.AuditQuery
		action string
	)
	fs.StringVar(&action, "action", "", "list the entries of this `action` only, e.g. provider.create")
	fs.IntVar(&q.Limit, "limit", 0, "list at most this many (default: the server's)")
	fs.Int64Var(&q.Before, "before", 0, "list the entries older than this `id`, to page")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit list takes no arguments, got %q", fs.Args())
	}
	if q.Limit < 0 || q.Before < 0 {
		return errors.New("audit list: --limit and --before must not be negative")
	}
	q.Action = rydes.AuditAction(action)
	c, err := af.client()
	if err != nil {
		return err
	}
	page, err := c.Audit(ctx, q)
	if err != nil {
		return af.explain(err)
	}
	if af.json {
		if page.Entries == nil {
			page.Entries = []rydes.AuditEntry{}
		}
		return writeJSON(stdout, page)
	}
	if len(page.Entries) == 0 {
		fmt.Fprintln(stdout, "no audit entries")
	} else {
		t := newTable(stdout)
		t.row("ID", "AT", "ACTOR", "ACTION", "TARGET", "FROM", "DETAILS")
		for _, e := range page.Entries {
			t.row(strconv.FormatInt(e.ID, 10), formatTime(e.At), printable(e.Actor), printable(string(e.Action)),
				orDash(printable(e.Target)), orDash(printable(e.RemoteAddr)), orDash(printable(string(e.Details))))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if page.NextBefore != 0 {
		more := "rydes audit list --before " + strconv.FormatInt(page.NextBefore, 10)
		if q.Action != "" {
			more += " --action " + printable(string(q.Action))
		}
		if q.Limit != 0 {
			more += " --limit " + strconv.Itoa(q.Limit)
		}
		fmt.Fprintf(stdout, "older ones: %s\n", more)
	}
	return nil
}

// orDash is s, or "-" if s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
