package subjects

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNames(t *testing.T) {
	t.Parallel()

	t.Run("DefaultsMatchTheContract", func(t *testing.T) {
		t.Parallel()
		n, err := New(PrefixDefault)
		require.NoError(t, err)
		require.Equal(t, "SMS_JOBS", n.JobsStream())
		require.Equal(t, "SMS_STATUS", n.StatusStream())
		require.Equal(t, "SMS_INBOUND", n.InboundStream())
		require.Equal(t, "SMS_DEAD", n.DeadStream())
		require.Equal(t, "sms_ledger", n.LedgerBucket())
		require.Equal(t, "sms.send.>", n.SendAll())
		require.Equal(t, "sms.status.accepted", n.Status("accepted"))
		require.Equal(t, "sms.dead.bulk", n.Dead("bulk"))
		require.Equal(t, []string{"sms.send.bulk", "sms.send.bulk.>"}, n.LaneFilters("bulk"))
	})

	t.Run("ConsumerNamesStayAsDeployed", func(t *testing.T) {
		t.Parallel()
		// Durable consumers outlive a process: a new name would start a new
		// consumer beside the old one.
		n, err := New("acme.sms")
		require.NoError(t, err)
		require.Equal(t, "jetsms_acme_sms_bulk", n.Consumer("bulk"))
		require.Equal(t, "jetsms_acme_sms_maxdeliver", n.MaxDeliverConsumer())
		require.Equal(t, "jetsms_acme_sms_callbacks", n.ResolverConsumer())
		require.Equal(t, "jetsms_acme_sms_reconcile", n.ReconcilerConsumer())
		require.Equal(t, "jetsms_campaign_tracker", n.TrackerConsumer())
	})

	t.Run("DottedPrefixStartsEveryName", func(t *testing.T) {
		t.Parallel()
		n, err := New("acme.sms")
		require.NoError(t, err)
		require.Equal(t, "ACME_SMS_JOBS", n.JobsStream())
		require.Equal(t, "acme_sms_ledger", n.LedgerBucket())
		require.Equal(t, "acme.sms.send.priority", n.Send("priority"))
		lane, campaign, ok := n.ParseSend("acme.sms.send.bulk.spring.sale")
		require.True(t, ok)
		require.Equal(t, "bulk", lane)
		require.Equal(t, "spring.sale", campaign)
	})

	t.Run("ParseSendRejectsOtherSubjects", func(t *testing.T) {
		t.Parallel()
		n, _ := New("sms")
		for _, s := range []string{"sms.status.accepted", "sms.send.", "other.send.bulk", "sms.send"} {
			_, _, ok := n.ParseSend(s)
			require.False(t, ok, s)
		}
	})

	t.Run("BadPrefixesAreRefused", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"", "a..b", ".sms", "sms.", "s ms", "sms.>", "sms.*"} {
			_, err := New(p)
			require.Error(t, err, p)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()
	n, err := New(PrefixDefault)
	require.NoError(t, err)

	t.Run("KeysAreBuiltOrRefusedNeverCut", func(t *testing.T) {
		t.Parallel()
		k, err := Key("j", "order-1", "x=2F")
		require.NoError(t, err)
		require.Equal(t, "j.order-1.x=2F", k)
		for _, bad := range [][]string{
			{"d", strings.Repeat("9", MaxKeyBytes)},
			{"j", "a.b"}, {"j", "a b"}, {"j", ""}, {"j", "a*"}, {"j", "a>"}, {},
		} {
			_, err := Key(bad...)
			require.ErrorIs(t, err, ErrInvalidName, "%q", bad)
			require.Less(t, len(err.Error()), 300, "the error quotes a value cut short")
		}
		_, err = Key("m", strings.Repeat("9", MaxKeyBytes-2))
		require.NoError(t, err, "exactly MaxKeyBytes")
	})

	t.Run("SubjectTokensFromOutsideAreRefused", func(t *testing.T) {
		t.Parallel()
		_, err := n.Inbound(strings.Repeat("9", 4000))
		require.ErrorIs(t, err, ErrInvalidName)
		s, err := n.Inbound("2021")
		require.NoError(t, err)
		require.Equal(t, "sms.inbound.2021", s)
		_, err = n.SendCampaign("bulk", strings.Repeat("c", 4000))
		require.ErrorIs(t, err, ErrInvalidName)
		_, err = n.SendCampaign("bulk", "a.b")
		require.ErrorIs(t, err, ErrInvalidName)
		require.Equal(t, "sms.dead._", n.Dead(strings.Repeat("l", 4000)), "a dead letter is stored whatever its lane")
		require.Error(t, ValidateToken(strings.Repeat("l", MaxTokenBytes+1)))
		require.Error(t, ValidatePrefix(strings.Repeat("a.", MaxPrefixBytes)))
	})
}
