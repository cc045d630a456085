package s2s

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
)

// target is one place to try to reach a remote domain.
type target struct {
	addr   string // host:port
	direct bool   // direct TLS (XEP-0368) rather than STARTTLS
}

// resolve lists where domain's server may be reached, best first: the
// static route if there is one; else the SRV records of _xmpps-server
// (direct TLS) and _xmpp-server (STARTTLS) merged by priority, direct TLS
// first on equal priority (XEP-0368 §3), each kind in the weighted random
// order of RFC 2782 that net.Resolver already gives; else the domain
// itself on 5269 (RFC 6120 §3.2.2). A domain whose records say "."
// offers no service and gets an empty list.
func resolve(ctx context.Context, r Resolver, routes map[string]string, domain string) ([]target, error) {
	if a, ok := routes[strings.ToLower(domain)]; ok {
		return []target{{addr: a}}, nil
	}
	type rec struct {
		t    target
		prio uint16
	}
	var recs []rec
	found, refused := false, false
	for _, kind := range []struct {
		service string
		direct  bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := r.LookupSRV(ctx, kind.service, "tcp", domain)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && (de.IsNotFound || de.IsTemporary || de.IsTimeout) {
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		for _, s := range srvs {
			found = true
			if s.Target == "." {
				refused = true
				continue
			}
			host := strings.TrimSuffix(s.Target, ".")
			recs = append(recs, rec{target{net.JoinHostPort(host, strconv.Itoa(int(s.Port))), kind.direct}, s.Priority})
		}
	}
	if !found {
		return []target{{addr: net.JoinHostPort(domain, DefaultPort)}}, nil
	}
	if refused && len(recs) == 0 {
		return nil, nil
	}
	// Stable: the weighted order within each kind is kept, and direct
	// TLS, looked up first, wins ties.
	slices.SortStableFunc(recs, func(a, b rec) int { return int(a.prio) - int(b.prio) })
	out := make([]target, len(recs))
	for i, r := range recs {
		out[i] = r.t
	}
	return out, nil
}
