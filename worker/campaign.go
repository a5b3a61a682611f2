package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/campaignstate"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/job"
)

// CampaignStates says what state a campaign is in; see campaign.Gate.
type CampaignStates interface {
	State(ctx context.Context, campaign string) (campaignstate.State, error)
}

// campaignBlocked reports whether m is a job of a paused or cancelled campaign,
// as the subject names it.
func (w *Worker) campaignBlocked(m jetstream.Msg) bool {
	if w.cfg.Campaigns == nil {
		return false
	}
	_, name, _ := w.cfg.Names.ParseSend(m.Subject())
	if name == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	st, err := w.cfg.Campaigns.State(ctx, name)
	return err == nil && (st == campaignstate.Paused || st == campaignstate.Cancelled)
}

// parkedMsgID marks the Nats-Msg-Id of a paused job stored again by park.
const parkedMsgID = ":parked:"

// parkRecheckMax is the longest a paused campaign's job waits before the worker
// looks at the campaign again.
const parkRecheckMax = time.Minute

// campaignHeld settles a job whose campaign is paused (held back) or cancelled
// (ended cancelled, unless it was sent before). It returns true when the job
// needs nothing more from this delivery.
func (w *Worker) campaignHeld(ctx context.Context, r *jobRun) bool {
	if r.job.Campaign == "" || w.cfg.Campaigns == nil {
		return false
	}
	st, err := w.cfg.Campaigns.State(ctx, r.job.Campaign)
	switch {
	case err != nil:
		w.log.Warn("campaign state not known; job released", zap.String("job_id", r.job.ID),
			zap.String("campaign", r.job.Campaign), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return true
	case st == campaignstate.Paused:
		w.park(ctx, r)
		return true
	case st == campaignstate.Cancelled:
		if w.lookedUp(ctx, r) {
			return true // sent or ended before the cancel
		}
		w.end(ctx, r, job.StatusCancelled, "", "", "the campaign was cancelled")
		return true
	}
	return false
}

// park holds back a job of a paused campaign: it is handed back with a delay that
// grows to parkRecheckMax, and no attempt is counted. So that a long pause does
// not run the job into the consumers' MaxDeliver (which guards against crash
// loops), a job delivered half that many times is stored again as a fresh
// message — the same job, which the ledger keeps from being sent twice — and the
// old one acked.
func (w *Worker) park(ctx context.Context, r *jobRun) {
	w.cfg.Metrics.JobDone(r.job.Lane, metrics.JobReleased)
	if r.meta.NumDelivered < uint64(w.cfg.MaxDeliver/2) {
		delay := min(nakDelay(time.Second, r.meta.NumDelivered, 0), parkRecheckMax)
		if err := r.msg.NakWithDelay(delay); err != nil {
			w.log.Warn("hold paused job", zap.String("job_id", r.job.ID), zap.Error(err))
		}
		return
	}
	hdr := nats.Header{}
	for k, v := range r.msg.Headers() {
		hdr[k] = v
	}
	hdr.Set(jetstream.MsgIDHeader, r.job.ID+parkedMsgID+strconv.FormatUint(r.meta.Sequence.Stream, 10))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, &nats.Msg{Subject: r.msg.Subject(), Data: r.msg.Data(), Header: hdr}); err != nil {
		w.log.Warn("paused job not stored again; held", zap.String("job_id", r.job.ID), zap.Error(err))
		_ = r.msg.NakWithDelay(parkRecheckMax)
		return
	}
	if err := r.msg.Ack(); err != nil {
		w.log.Warn("ack paused job stored again", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// CampaignRows says whether a job id is one of a campaign's rows; see
// campaign.Gate.HasRow. When Config.Campaigns has it too, jobs on a campaign's
// subject that are not its rows end failed (not_campaign_row).
type CampaignRows interface {
	HasRow(ctx context.Context, campaign, jobID string) (known, ok bool, err error)
}

// notCampaignRow ends a job published to a campaign's subject that is not one of
// the campaign's rows (its id is not "<campaign>:<row>" with row 1..rows of the
// file): it would be counted in the campaign, or sent under its name. A campaign
// without a record is no campaign: its subject's jobs are sent as any other. It
// returns true when the job was ended or released.
func (w *Worker) notCampaignRow(ctx context.Context, r *jobRun) bool {
	rows, ok := w.cfg.Campaigns.(CampaignRows)
	if r.job.Campaign == "" || !ok {
		return false
	}
	known, isRow, err := rows.HasRow(ctx, r.job.Campaign, r.job.ID)
	switch {
	case err != nil:
		w.log.Warn("campaign not readable; job released", zap.String("job_id", r.job.ID),
			zap.String("campaign", r.job.Campaign), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return true
	case !known || isRow:
		return false
	}
	w.refuse(ctx, r, events.ReasonNotCampaignRow,
		fmt.Sprintf("id: %q is not a row of campaign %s (%s:<row>, row from 1 to the rows of its file); "+
			"publish other jobs to %s", r.job.ID, r.job.Campaign, r.job.Campaign, w.cfg.Names.Send(r.job.Lane)))
	return true
}
