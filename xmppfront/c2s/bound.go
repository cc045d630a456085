package c2s

import (
	"context"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// LegacySession answers the session establishment IQ of RFC 3921 that old
// clients still send after binding (RFC 6121 keeps it as a no-op
// advertised with <optional/>). Register it on the Mux for
// {NSSession}session.
var LegacySession = router.IQHandlerFunc(func(context.Context, router.IQ) (*stream.Element, error) {
	return nil, nil
})

// handleBindStage accepts the bind IQ (RFC 6120 §7) and nothing else.
func (c *session) handleBindStage(el *stream.Element) bool {
	if el.Name != (stream.Name{Space: stream.NSClient, Local: "iq"}) {
		if isStanza(el) {
			c.fail(stream.NotAuthorized, "bind a resource first")
		} else {
			c.fail(stream.UnsupportedStanzaType, "")
		}
		return false
	}
	p, err := stanza.Payload(el)
	if err != nil || p.Name != (stream.Name{Space: NSBind, Local: "bind"}) || el.Attr("type") != "set" {
		c.fail(stream.NotAuthorized, "bind a resource first")
		return false
	}
	res := ""
	if r := p.Child("resource", NSBind); r != nil {
		res = strings.TrimSpace(r.Text())
	}
	if res == "" {
		res = randomID(6) // server-chosen (RFC 6120 §7.6)
	}
	full, err := jid.New(c.user.Localpart(), c.user.Domainpart(), res)
	if err != nil {
		return c.iqError(el, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "resourcepart not allowed"})
	}
	reply := stanza.Result(el, stream.NewElement(NSBind, "bind").AddChild(stream.NewElement(NSBind, "jid").AddText(full.String())))
	reply.SetAttr("to", full.String())
	c.full, c.stage = full, stageReady
	c.log = c.log.WithField("jid", full.String())
	// Register before answering, so that a peer told of the new resource
	// by this client finds it; what is routed to it meanwhile waits in
	// the queue until the writer starts after the answer.
	c.makeQueues()
	c.srv.cfg.Router.Bind(c)
	ok := c.write(reply)
	c.out.release()
	c.work.release()
	return ok
}

// makeQueues creates the session's queues, held until the bind is
// answered.
func (c *session) makeQueues() {
	c.out = newLane(c.srv.cfg.SendQueue, c.writeOut)
	c.work = newLane(c.srv.cfg.WorkQueue, func(f func(context.Context), _ bool) { f(c.ctx) })
	c.bound.Store(true)
}

// writeOut writes one queued stanza to the client. While more are queued
// behind it (a MAM page, an offline queue, a burst of chat) it only adds
// it to the writer's buffer, up to burstBytes: the burst then goes out as
// one TLS record and one system call instead of one per stanza. The last
// stanza of a burst writes the buffer, so nothing waits for another.
func (c *session) writeOut(el *stream.Element, more bool) {
	if c.killed.Load() {
		return // drain; nothing more goes out
	}
	_ = c.writeLocked(func(w *stream.Writer) error {
		if c.wclosed {
			return nil
		}
		if more && w.Queued() < burstBytes {
			return w.QueueElement(el)
		}
		return w.WriteElement(el)
	})
}

// burstBytes bounds what writeOut gathers before writing: about one TLS
// record's worth (16 KiB of plaintext at most).
const burstBytes = 12 << 10

// Send implements router.Session. A full queue means the client does not
// read what it is sent: it is disconnected with policy-violation.
func (c *session) Send(st *stream.Element) bool {
	c.qmu.RLock()
	defer c.qmu.RUnlock()
	if c.qclosed || c.killed.Load() {
		return false
	}
	if c.out.push(st) {
		return true
	}
	c.log.Warn("c2s: send queue full, disconnecting a client that does not read")
	c.cutOff()
	return false
}

var _ router.QueueWaiter = (*session)(nil)

// SendWait implements router.QueueWaiter: it queues st, waiting for room
// instead of cutting the client off, for bursts the server itself makes
// (an offline queue being drained, a MAM page). It gives up when ctx ends,
// the session ends, or the client has not made room within the write
// timeout, which is then treated like any client too slow to read.
func (c *session) SendWait(ctx context.Context, st *stream.Element) bool {
	c.qmu.RLock()
	defer c.qmu.RUnlock()
	if c.qclosed || c.killed.Load() {
		return false
	}
	t := time.NewTimer(c.srv.cfg.WriteTimeout)
	defer t.Stop()
	for !c.out.push(st) {
		room := c.out.full()
		if room == nil {
			continue // an item left between the push and the look
		}
		select {
		case <-room:
		case <-ctx.Done():
			return false
		case <-c.ctx.Done():
			return false
		case <-t.C:
			c.log.Warn("c2s: send queue full for too long, disconnecting a client that does not read")
			c.cutOff()
			return false
		}
	}
	return true
}

// Do implements router.Session.
func (c *session) Do(f func(context.Context)) bool {
	c.qmu.RLock()
	defer c.qmu.RUnlock()
	if c.qclosed || c.killed.Load() {
		return false
	}
	return c.work.push(f)
}

// Replace implements router.Session.
func (c *session) Replace() {
	c.kill(stream.Conflict, "replaced by a new session")
}

// Kick ends the session from another goroutine with a stream error.
func (c *session) Kick(cond stream.Condition, text string) {
	c.kill(cond, text)
}

// handleStanza checks a stanza from a bound client, stamps its 'from' and
// hands it to the router through the bus.
func (c *session) handleStanza(el *stream.Element) bool {
	if !isStanza(el) {
		c.fail(stream.UnsupportedStanzaType, "")
		return false
	}
	if f := el.Attr("from"); f != "" {
		// RFC 6120 §8.1.2.1: a client may only name itself.
		fj, err := jid.Parse(f)
		if err != nil || !(fj.Equal(c.full) || fj.Equal(c.user)) {
			c.fail(stream.InvalidFrom, "")
			return false
		}
	}
	el.SetAttr("from", c.full.String())
	if el.Name.Local == "iq" {
		switch typ := el.Attr("type"); {
		case el.Attr("id") == "":
			c.Send(stanza.ErrorReply(el, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "an IQ needs an id"}))
			return true
		case typ != "get" && typ != "set" && typ != "result" && typ != "error":
			c.Send(stanza.ErrorReply(el, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "unknown IQ type"}))
			return true
		}
	}
	if err := c.srv.cfg.Router.Submit(c.ctx, c, el); err != nil {
		c.log.WithError(err).Error("c2s: bus")
		c.fail(stream.InternalServerError, "")
		return false
	}
	return true
}
