package job

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// gsmBasic is every character of the GSM 03.38 default alphabet except the escape
// code, in table order; gsmExtension is every character of its extension table.
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
		" !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
		"¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

func TestSegments(t *testing.T) {
	t.Parallel()

	a := func(n int) string { return strings.Repeat("a", n) }
	ya := func(n int) string { return strings.Repeat("я", n) }
	emoji := "😀" // outside the BMP: a surrogate pair in UTF-16

	tests := []struct {
		name    string
		content string
		n       int
		enc     Encoding
	}{
		{"EmptyIsNone", "", 0, GSM7},
		{"OneCharacter", "a", 1, GSM7},
		{"GSM160FitsOne", a(160), 1, GSM7},
		{"GSM161TakesTwo", a(161), 2, GSM7},
		{"GSM306FitsTwoParts", a(153 * 2), 2, GSM7},
		{"GSM307TakesThree", a(153*2 + 1), 3, GSM7},
		{"GSM1530FitsTen", a(1530), 10, GSM7},
		{"ExtensionCountsTwice80Fit", strings.Repeat("€", 80), 1, GSM7},
		{"ExtensionCountsTwice81DoNot", strings.Repeat("€", 81), 2, GSM7},
		{"ExtensionPairAtEndOfSingle", a(158) + "{", 1, GSM7},
		{"ExtensionPairNotSplitAtBoundary", a(152) + "€" + a(152), 3, GSM7},
		{"ExtensionPairFitsWhenNotAtBoundary", a(151) + "€" + a(153), 2, GSM7},
		{"EveryBasicCharacterIsGSM", gsmBasic, 1, GSM7},
		{"EveryExtensionCharacterIsGSM", gsmExtension, 1, GSM7},
		{"UCS2At70FitsOne", ya(70), 1, UCS2},
		{"UCS2At71TakesTwo", ya(71), 2, UCS2},
		{"UCS2At134FitsTwoParts", ya(67 * 2), 2, UCS2},
		{"UCS2At135TakesThree", ya(67*2 + 1), 3, UCS2},
		{"Emoji35Fit", strings.Repeat(emoji, 35), 1, UCS2},
		{"Emoji36TakeTwo", strings.Repeat(emoji, 36), 2, UCS2},
		{"SurrogatePairNotSplitAtBoundary", ya(66) + emoji + ya(66), 3, UCS2},
		{"SurrogatePairFitsWhenNotAtBoundary", ya(65) + emoji + ya(67), 2, UCS2},
		{"OneNonGSMCharacterSwitchesAll", a(100) + "ç", 2, UCS2}, // 101 units
		{"MixedGSMAndEmoji", "Your code is 123456 " + emoji, 1, UCS2},
		{"BacktickIsNotGSM", "`", 1, UCS2},
		{"TabIsNotGSM", "\t", 1, UCS2},
		{"SmallCCedillaIsNotGSM", "ç", 1, UCS2},
		{"InvalidUTF8CountsAsReplacement", "a\xffb", 1, UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, enc := Segments(tt.content)
			require.Equal(t, tt.n, n)
			require.Equal(t, tt.enc, enc)
		})
	}

	t.Run("CharactersCountsSeptetsOrUnits", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, utf8.RuneCountInString(gsmBasic), Characters(gsmBasic, GSM7))
		require.Equal(t, 2*utf8.RuneCountInString(gsmExtension), Characters(gsmExtension, GSM7))
		require.Equal(t, 6, Characters("a€[b", GSM7))
		require.Equal(t, 0, Characters("", GSM7))
		require.Equal(t, 3, Characters("я😀", UCS2))
		require.Equal(t, 4, Characters("a€[b", UCS2))
		require.Equal(t, 2, Characters("aç", GSM7), "a character GSM-7 lacks counts one")
		require.Equal(t, 2, Characters("a😀", "other"))
	})

	t.Run("BasicTableHas127Characters", func(t *testing.T) {
		t.Parallel()
		// 128 codes, one of which is the escape to the extension table.
		require.Equal(t, 127, utf8.RuneCountInString(gsmBasic))
		seen := map[rune]bool{}
		for _, r := range gsmBasic {
			require.False(t, seen[r], "%q twice", r)
			seen[r] = true
			require.Equal(t, 1, gsmSeptets(r), "%q", r)
		}
		for _, r := range gsmExtension {
			require.Equal(t, 2, gsmSeptets(r), "%q", r)
		}
		for r := rune(0); r < 0x3000; r++ {
			if !seen[r] && !strings.ContainsRune(gsmExtension, r) {
				require.Equal(t, 0, gsmSeptets(r), "%q", r)
			}
		}
	})
}

func BenchmarkSegments(b *testing.B) {
	for _, bc := range []struct{ name, content string }{
		{"GSM160", strings.Repeat("a", 160)},
		{"UCS2_70", strings.Repeat("я", 70)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Segments(bc.content)
			}
		})
	}
}

func TestTraceParentShapes(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	for _, bad := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + strings.Repeat("x", 4000), "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		require.Error(t, CheckTraceParent(bad), "%.60q", bad)
	}
}
