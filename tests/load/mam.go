package load

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The MAM run: one user (Prefix+"0") builds up a large archive by chatting
// with a few partners (Prefix+"1" … Prefix+k) through the protocol, at the
// server's own pace, and then times the archive queries a client makes
// when it opens a conversation or scrolls back: the newest page, a page
// from the middle of the archive and the newest page with one partner.
// Every message of the fill must arrive at its recipient, and the user's
// archive must have grown by exactly the number delivered: a server that
// drops or declines to archive a message is caught by the count, not
// credited with a smaller archive.

// MAMPageSize is the page a client asks for (RSM <max/>).
const MAMPageSize = 50

// ErrArchiveIncomplete is returned when the archive grew by fewer
// messages than the fill delivered, or its size could not be read.
var ErrArchiveIncomplete = errors.New("archive incomplete")

// MAMConfig is what a MAM run adds to Config. Users, Rate, Duration and
// ColdLogins of Config are not used: the run logs in Partners+1 users.
type MAMConfig struct {
	// Fill is the number of messages to exchange; 0 queries the archive
	// as it is.
	Fill int
	// Partners the user chats with (default 4).
	Partners int
	// Queries is the number of repetitions of each query kind.
	Queries int
	// FillTimeout stops sending after this long (0: no limit); the run
	// then reports what the server archived in that time.
	FillTimeout time.Duration
	// QueryTime bounds the query phase (default 5 minutes): on a server
	// whose queries take seconds, fewer repetitions are made.
	QueryTime time.Duration
	// QueryTimeout bounds one query (default 2 minutes).
	QueryTimeout time.Duration
}

// MAM query kinds, in the order of MAMReport.Queries.
const (
	KindNewest = "newest page"
	KindMiddle = "middle page"
	KindWith   = "with query"
)

// MAMTiming is what one query kind measured.
type MAMTiming struct {
	Kind          string
	Queries       int // answered with a result
	Errors        int // answered with an error, or not at all
	P50, P99, Max time.Duration
	// MinResults and MaxResults are the fewest and most messages a page
	// of this kind held.
	MinResults, MaxResults int
	Note                   string // the first error
}

// MAMReport is what a MAM run measured.
type MAMReport struct {
	User     string
	Partners int
	// The fill.
	Requested                           int
	Sent, Delivered, Lost, Dups, Errors int64
	FillSeconds, FillPerSec             float64
	FillP50, FillP99                    time.Duration
	FillStopped                         bool // FillTimeout ran out
	// The archive check: ArchiveBefore and ArchiveAfter are the user's
	// archive size before and after the fill (-1: unknown), Missing the
	// delivered messages the archive lacks.
	ArchiveBefore, ArchiveAfter int64
	Missing                     int64
	ArchiveNote                 string
	// Server memory around the fill (0 without ServerPID).
	RSSBeforeFill, RSSAfterFill int64
	CPUPer1000Fill              float64
	Queries                     []MAMTiming
	QueryNote                   string
}

func (r MAMReport) String() string {
	var b strings.Builder
	if r.Requested > 0 {
		fmt.Fprintf(&b, "mam fill          %s and %d partners, %d requested: sent %d, delivered %d, lost %d, duplicated %d, errors %d\n",
			r.User, r.Partners, r.Requested, r.Sent, r.Delivered, r.Lost, r.Dups, r.Errors)
		fmt.Fprintf(&b, "mam fill rate     %.1f msg/s over %.1fs, latency p50 %s, p99 %s", r.FillPerSec, r.FillSeconds, r.FillP50, r.FillP99)
		if r.FillStopped {
			fmt.Fprintf(&b, " (stopped by the fill timeout at %d of %d)", r.Delivered, r.Requested)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "mam archive       %s holds %d messages, %d before the fill, delivered in the fill %d, missing %d",
		r.User, r.ArchiveAfter, r.ArchiveBefore, r.Delivered, r.Missing)
	if r.ArchiveNote != "" {
		fmt.Fprintf(&b, " (%s)", r.ArchiveNote)
	}
	b.WriteByte('\n')
	if r.RSSAfterFill > 0 {
		fmt.Fprintf(&b, "mam server        %.1f MiB RSS before the fill, %.1f MiB after, %.3fs CPU per 1000 messages\n",
			float64(r.RSSBeforeFill)/(1<<20), float64(r.RSSAfterFill)/(1<<20), r.CPUPer1000Fill)
	}
	for _, q := range r.Queries {
		fmt.Fprintf(&b, "mam %-13s p50 %s, p99 %s, max %s; %d queries, %s results per page, errors %d",
			q.Kind, q.P50, q.P99, q.Max, q.Queries, span(q.MinResults, q.MaxResults), q.Errors)
		if q.Note != "" {
			fmt.Fprintf(&b, " (%s)", q.Note)
		}
		b.WriteByte('\n')
	}
	if r.QueryNote != "" {
		fmt.Fprintf(&b, "mam queries       %s\n", r.QueryNote)
	}
	return b.String()
}

func span(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// RunMAM fills one user's archive and times queries on it. The report is
// returned with the error when the run got that far.
func RunMAM(ctx context.Context, cfg Config, mc MAMConfig) (MAMReport, error) {
	cfg = cfg.withDefaults()
	if mc.Partners <= 0 {
		mc.Partners = 4
	}
	if mc.QueryTime <= 0 {
		mc.QueryTime = 5 * time.Minute
	}
	if mc.QueryTimeout <= 0 {
		mc.QueryTimeout = 2 * time.Minute
	}
	rep := MAMReport{Partners: mc.Partners, Requested: mc.Fill, ArchiveBefore: -1, ArchiveAfter: -1}
	cfg.Users = mc.Partners + 1
	if cfg.Register {
		if err := registerAll(ctx, cfg); err != nil {
			return rep, err
		}
	}
	online, failed, _ := loginAll(ctx, cfg, nil)
	var readers sync.WaitGroup
	defer func() {
		// Closing the connections ends the readers.
		for _, u := range online {
			u.c.close()
		}
		readers.Wait()
	}()
	if failed > 0 || len(online) != cfg.Users {
		return rep, fmt.Errorf("mam: %d of %d logins failed", failed, cfg.Users)
	}
	owner := &mamClient{user: online[0]}
	rep.User = owner.c.jidBare()
	st := newStats(cfg.Users)
	for i, u := range online {
		if err := u.c.send(`<presence/>`); err != nil {
			return rep, fmt.Errorf("presence %s: %w", u.name, err)
		}
		var qc *mamClient
		if i == 0 {
			qc = owner
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			mamReadLoop(u, qc, st)
		}()
	}

	var err error
	rep.ArchiveBefore, err = owner.count(ctx, mc.QueryTimeout)
	if err != nil {
		rep.ArchiveNote = err.Error()
	}
	if mc.Fill > 0 {
		fill(ctx, cfg, mc, online, st, &rep)
		rep.ArchiveAfter, err = owner.countAtLeast(ctx, rep.ArchiveBefore+rep.Delivered, cfg.Drain, mc.QueryTimeout)
	} else {
		rep.ArchiveAfter = rep.ArchiveBefore
	}
	if err != nil {
		rep.ArchiveNote = err.Error()
	}
	var check error
	switch {
	case rep.ArchiveBefore < 0 || rep.ArchiveAfter < 0:
		check = fmt.Errorf("mam: %w: the archive size is unknown (%s)", ErrArchiveIncomplete, rep.ArchiveNote)
	case rep.ArchiveAfter-rep.ArchiveBefore < rep.Delivered:
		rep.Missing = rep.Delivered - (rep.ArchiveAfter - rep.ArchiveBefore)
		check = fmt.Errorf("mam: %w: %d of %d delivered messages are not in %s's archive", ErrArchiveIncomplete, rep.Missing, rep.Delivered, rep.User)
	}
	if mc.Queries > 0 {
		partner := online[1].c.jidBare()
		if err := runQueries(ctx, owner, partner, mc, &rep); err != nil {
			rep.QueryNote = err.Error()
		}
	}
	return rep, check
}

// fill exchanges mc.Fill messages between the owner and its partners:
// half sent by the owner round-robin to the partners, half sent to the
// owner by the partners, every sender keeping cfg.Window in flight.
func fill(ctx context.Context, cfg Config, mc MAMConfig, online []*user, st *stats, rep *MAMReport) {
	owner := online[0]
	rep.RSSBeforeFill, _ = rss(cfg.ServerPID)
	cpu0, _ := cpuSeconds(cfg.ServerPID)
	fmt.Fprintf(cfg.Log, "mam: filling %s's archive with %d messages\n", owner.name, mc.Fill)
	sendCtx, stop := context.WithCancel(ctx)
	if mc.FillTimeout > 0 {
		sendCtx, stop = context.WithTimeout(ctx, mc.FillTimeout)
	}
	defer stop()
	start := time.Now()
	var nextID atomic.Uint64
	var senders sync.WaitGroup
	send := func(u *user, n int, to func(i int) string) {
		defer senders.Done()
		for i := range n {
			select {
			case <-sendCtx.Done():
				return
			case u.inflight <- struct{}{}:
			}
			id := nextID.Add(1)
			st.sent(id, u)
			if err := u.sendMsg(to(i), id, time.Now()); err != nil {
				st.failed(id)
				return
			}
		}
	}
	partners := online[1:]
	fromOwner := (mc.Fill + 1) / 2
	senders.Add(1)
	go send(owner, fromOwner, func(i int) string { return partners[i%len(partners)].c.jidBare() })
	toOwner := mc.Fill - fromOwner
	for j, p := range partners {
		n := toOwner / len(partners)
		if j < toOwner%len(partners) {
			n++
		}
		senders.Add(1)
		go send(p, n, func(int) string { return owner.c.jidBare() })
	}
	done := make(chan struct{})
	go func() {
		senders.Wait()
		close(done)
	}()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-progress.C:
			_, d, _, _ := st.totals()
			fmt.Fprintf(cfg.Log, "mam: %d of %d delivered, %.0f msg/s\n", d, mc.Fill, float64(d)/time.Since(start).Seconds())
		}
	}
	rep.FillStopped = sendCtx.Err() != nil && ctx.Err() == nil
	drain(ctx, st, cfg.Drain)
	rep.FillSeconds = time.Since(start).Seconds()
	rep.Sent, rep.Delivered, rep.Dups, rep.Errors = st.totals()
	rep.Lost = rep.Sent - rep.Delivered - rep.Errors
	rep.FillPerSec = float64(rep.Delivered) / rep.FillSeconds
	rep.FillP50, rep.FillP99, _ = st.percentiles()
	rep.RSSAfterFill, _ = rss(cfg.ServerPID)
	if cpu1, _ := cpuSeconds(cfg.ServerPID); cpu1 > 0 && rep.Delivered > 0 {
		rep.CPUPer1000Fill = (cpu1 - cpu0) / float64(rep.Delivered) * 1000
	}
}

// runQueries times the three query kinds, interleaved so that drift in
// the machine's load falls on all of them alike.
func runQueries(ctx context.Context, owner *mamClient, partner string, mc MAMConfig, rep *MAMReport) error {
	// The middle of the archive by time: halfway between the oldest and
	// the newest message, and the first message from there on anchors
	// the middle page, which is the page before it (a client scrolling
	// back).
	oldest, err := owner.query(ctx, mc.QueryTimeout, mamFilter{}, "<max>1</max>")
	if err != nil {
		return fmt.Errorf("oldest message: %w", err)
	}
	newest, err := owner.query(ctx, mc.QueryTimeout, mamFilter{}, "<max>1</max><before/>")
	if err != nil {
		return fmt.Errorf("newest message: %w", err)
	}
	if len(oldest.results) == 0 || len(newest.results) == 0 {
		return errors.New("the archive is empty")
	}
	t0, err0 := time.Parse(time.RFC3339Nano, oldest.results[0].Forwarded.Delay.Stamp)
	t1, err1 := time.Parse(time.RFC3339Nano, newest.results[0].Forwarded.Delay.Stamp)
	if err := errors.Join(err0, err1); err != nil {
		return fmt.Errorf("delay stamps: %w", err)
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	anchor, err := owner.query(ctx, mc.QueryTimeout, mamFilter{start: mid}, "<max>1</max>")
	if err != nil {
		return fmt.Errorf("middle message: %w", err)
	}
	if len(anchor.results) == 0 {
		return fmt.Errorf("no message after %s", mid.Format(time.RFC3339Nano))
	}
	kinds := []struct {
		kind   string
		filter mamFilter
		set    string
	}{
		{KindNewest, mamFilter{}, fmt.Sprintf("<max>%d</max><before/>", MAMPageSize)},
		{KindMiddle, mamFilter{}, fmt.Sprintf("<max>%d</max><before>%s</before>", MAMPageSize, xmlEscape(anchor.results[0].ID))},
		{KindWith, mamFilter{with: partner}, fmt.Sprintf("<max>%d</max><before/>", MAMPageSize)},
	}
	lat := make([][]time.Duration, len(kinds))
	rep.Queries = make([]MAMTiming, len(kinds))
	for i, k := range kinds {
		rep.Queries[i] = MAMTiming{Kind: k.kind, MinResults: -1}
	}
	deadline := time.Now().Add(mc.QueryTime)
	var stopped error
	for n := 0; n < mc.Queries && stopped == nil; n++ {
		if time.Now().After(deadline) {
			stopped = fmt.Errorf("stopped after %d rounds: the query time of %s ran out", n, mc.QueryTime)
			break
		}
		for i, k := range kinds {
			t := &rep.Queries[i]
			start := time.Now()
			page, err := owner.query(ctx, mc.QueryTimeout, k.filter, k.set)
			took := time.Since(start)
			if err != nil {
				t.Errors++
				if t.Note == "" {
					t.Note = err.Error()
				}
				if ctx.Err() != nil || errors.Is(err, errNoAnswer) {
					stopped = err
					break
				}
				continue
			}
			t.Queries++
			lat[i] = append(lat[i], took)
			r := len(page.results)
			if t.MinResults < 0 || r < t.MinResults {
				t.MinResults = r
			}
			t.MaxResults = max(t.MaxResults, r)
		}
	}
	for i := range rep.Queries {
		t := &rep.Queries[i]
		t.MinResults = max(t.MinResults, 0)
		if l := lat[i]; len(l) > 0 {
			slices.Sort(l)
			t.P50, t.P99, t.Max = l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
		}
	}
	return stopped
}

// mamFilter is the query form; zero fields are left out.
type mamFilter struct {
	with  string
	start time.Time
}

func (f mamFilter) form() string {
	if f.with == "" && f.start.IsZero() {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>`)
	if f.with != "" {
		fmt.Fprintf(&b, `<field var='with'><value>%s</value></field>`, xmlEscape(f.with))
	}
	if !f.start.IsZero() {
		fmt.Fprintf(&b, `<field var='start'><value>%s</value></field>`, f.start.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	b.WriteString(`</x>`)
	return b.String()
}

// mamResult is one <result/> of a query.
type mamResult struct {
	QueryID   string `xml:"queryid,attr"`
	ID        string `xml:"id,attr"`
	Forwarded struct {
		Delay struct {
			Stamp string `xml:"stamp,attr"`
		} `xml:"urn:xmpp:delay delay"`
	} `xml:"urn:xmpp:forward:0 forwarded"`
}

// parseMAMResult finds a MAM <result/> in a message's inner XML.
func parseMAMResult(inner string) (mamResult, bool) {
	if !strings.Contains(inner, "urn:xmpp:mam:2") || !strings.Contains(inner, "result") {
		return mamResult{}, false
	}
	var m struct {
		Result *mamResult `xml:"urn:xmpp:mam:2 result"`
	}
	if err := xml.Unmarshal([]byte("<m>"+inner+"</m>"), &m); err != nil || m.Result == nil {
		return mamResult{}, false
	}
	return *m.Result, true
}

// mamPage is the answer to one query.
type mamPage struct {
	results []mamResult
	iq      element
}

// pendingQuery collects the results of the one query in flight.
type pendingQuery struct {
	iqID, queryID string
	results       []mamResult
	done          chan element
}

// mamClient queries the archive of its user, one query at a time.
type mamClient struct {
	*user
	seq     int
	mu      sync.Mutex
	pending *pendingQuery
	strays  int // results of no query in flight
}

var errNoAnswer = errors.New("no answer")

// query sends a MAM query with filter f and the RSM <set/> content set,
// and waits for its results and <fin/>. An IQ error is an error.
func (m *mamClient) query(ctx context.Context, timeout time.Duration, f mamFilter, set string) (mamPage, error) {
	m.seq++
	p := &pendingQuery{iqID: fmt.Sprintf("mam%d", m.seq), queryID: fmt.Sprintf("q%d", m.seq), done: make(chan element, 1)}
	m.mu.Lock()
	m.pending = p
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.pending = nil
		m.mu.Unlock()
	}()
	m.wmu.Lock()
	err := m.c.send(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s<set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>`,
		p.iqID, p.queryID, f.form(), set))
	m.wmu.Unlock()
	if err != nil {
		return mamPage{}, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return mamPage{}, ctx.Err()
	case <-t.C:
		return mamPage{}, fmt.Errorf("%w to a query within %s", errNoAnswer, timeout)
	case iq := <-p.done:
		m.mu.Lock()
		page := mamPage{results: p.results, iq: iq}
		m.mu.Unlock()
		if iq.attr("type") != "result" {
			return page, fmt.Errorf("%w: %s", errFailure, iq.Inner)
		}
		return page, nil
	}
}

// count asks for the archive size (RSM <max>0</max>).
func (m *mamClient) count(ctx context.Context, timeout time.Duration) (int64, error) {
	page, err := m.query(ctx, timeout, mamFilter{}, "<max>0</max>")
	if err != nil {
		return -1, err
	}
	n, note := parseArchiveCount(page.iq)
	if n < 0 {
		return -1, errors.New(note)
	}
	return n, nil
}

// countAtLeast reads the archive size until it reaches want or has not
// grown for quiet: a server may archive after it delivers.
func (m *mamClient) countAtLeast(ctx context.Context, want int64, quiet, timeout time.Duration) (int64, error) {
	last, since := int64(-1), time.Now()
	for {
		n, err := m.count(ctx, timeout)
		if err != nil || n >= want {
			return n, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) >= quiet {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deliver routes what the owner's reader got to the query in flight; it
// reports false for anything that is not part of a query.
func (m *mamClient) deliver(name string, e element) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending
	switch name {
	case "iq":
		if p != nil && e.attr("id") == p.iqID {
			p.done <- e
		}
		return true
	case "message":
		r, ok := parseMAMResult(e.Inner)
		if !ok {
			return false
		}
		if p != nil && r.QueryID == p.queryID {
			p.results = append(p.results, r)
		} else {
			m.strays++
		}
		return true
	}
	return false
}

// mamReadLoop records the fill messages that arrive at u, and hands the
// owner's query answers to m (nil on the partners).
func mamReadLoop(u *user, m *mamClient, st *stats) {
	for {
		name, e, err := u.c.next()
		if err != nil {
			return
		}
		if m != nil && m.deliver(name, e) {
			continue
		}
		if name != "message" {
			continue
		}
		if from, _ := st.account(e); from != nil {
			select {
			case <-from.inflight:
			default:
			}
		}
	}
}
