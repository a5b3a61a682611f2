package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// promqlFunctions are the PromQL functions and aggregations the dashboards and
// rules may call; an identifier followed by "(" must be one of them.
var promqlFunctions = []string{
	"abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp",
	"clamp_max", "clamp_min", "count", "count_over_time", "count_values", "delta", "deriv", "floor",
	"group", "histogram_quantile", "idelta", "increase", "irate", "label_join", "label_replace",
	"last_over_time", "max", "max_over_time", "min", "min_over_time", "predict_linear", "quantile",
	"quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "stddev", "sum",
	"sum_over_time", "time", "timestamp", "topk", "vector",
}

// promqlLabelListKeywords are followed by a parenthesised list of label names.
var promqlLabelListKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// promqlOperators are the keywords that are neither metrics nor functions.
var promqlOperators = []string{"and", "or", "unless", "bool", "offset", "inf", "nan"}

// promqlMetricNames returns the metric names expr selects, in order. It is a
// lexer, not a parser: it skips strings, label matchers in braces, ranges in
// brackets, numbers, Grafana variables ($lane, ${x}, $__rate_interval) and the
// label lists of by, without, on, ignoring, group_left and group_right; any other
// identifier is a function call (followed by "(", which must be a known function)
// or a metric name. Known functions are never metric names. It reports unbalanced brackets and unknown functions.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipTo(expr, i, '}')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end, err := skipTo(expr, i, ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				end, err := skipTo(expr, i, '}')
				if err != nil {
					return nil, err
				}
				i = end
				continue
			}
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
		case isDigit(c) || c == '.' && i+1 < len(expr) && isDigit(expr[i+1]):
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < len(expr) && (expr[next] == ' ' || expr[next] == '\n' || expr[next] == '\t') {
				next++
			}
			followedByParen := next < len(expr) && expr[next] == '('
			switch {
			case slices.Contains(promqlLabelListKeywords, strings.ToLower(word)):
				if followedByParen {
					end, err := skipTo(expr, next, ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case slices.Contains(promqlOperators, strings.ToLower(word)):
			case slices.Contains(promqlFunctions, word):
				// A call, or an aggregation whose by or without comes first.
			case followedByParen:
				return nil, fmt.Errorf("unknown function %q in %q", word, expr)
			default:
				names = append(names, word)
			}
		case c == '(' || c == ')' || c == ']' || c == '}':
			if c != '(' && c != ')' {
				return nil, fmt.Errorf("unbalanced %q at %d in %q", c, i, expr)
			}
			i++
		default:
			i++
		}
	}
	if err := balanced(expr); err != nil {
		return nil, err
	}
	return names, nil
}

// skipString returns the index after the string literal starting at expr[i].
func skipString(expr string, i int) (int, error) {
	quote := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && quote != '`':
			j++
		case expr[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, expr)
}

// skipTo returns the index after the close that ends the group opening at
// expr[i], stepping over strings inside it.
func skipTo(expr string, i int, close byte) (int, error) {
	open := expr[i]
	depth := 0
	for j := i; j < len(expr); {
		switch expr[j] {
		case '"', '\'', '`':
			end, err := skipString(expr, j)
			if err != nil {
				return 0, err
			}
			j = end
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
		j++
	}
	return 0, fmt.Errorf("no %q closes the %q at %d in %q", close, open, i, expr)
}

// balanced reports parentheses that do not pair up, outside strings.
func balanced(expr string) error {
	depth := 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '"', '\'', '`':
			end, err := skipString(expr, i)
			if err != nil {
				return err
			}
			i = end - 1
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return fmt.Errorf("unbalanced ')' at %d in %q", i, expr)
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("%d unclosed '(' in %q", depth, expr)
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}
func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		expr  string
		names []string
		err   string
	}{
		"PlainSelector": {expr: `jetsms_circuit_open`, names: []string{"jetsms_circuit_open"}},
		"SkipsMatchersRangesAndGrouping": {
			expr:  `sum by (lane, outcome) (rate(jetsms_jobs_total{lane=~"$lane",outcome!="a}b"}[$__rate_interval]))`,
			names: []string{"jetsms_jobs_total"},
		},
		"GroupingAfterTheAggregation": {
			expr:  "sum(rate(a_total[5m])) by (le)\n  /\nignoring(le) group_left (x) b_total > 0.05",
			names: []string{"a_total", "b_total"},
		},
		"NumbersAndOffsets": {
			expr:  `histogram_quantile(0.99, sum by (le) (rate(x_bucket[10m] offset 1h))) > 1e3 and on() vector(1)`,
			names: []string{"x_bucket"},
		},
		"GrafanaVariables": {expr: `max(y{job=~"${job}"}) * $factor`, names: []string{"y"}},
		"UnknownFunction":  {expr: `summ(x)`, err: `unknown function "summ"`},
		"UnclosedParen":    {expr: `sum(rate(x[5m])`, err: "unclosed"},
		"UnclosedMatcher":  {expr: `x{lane="a"`, err: "closes"},
		"StrayBracket":     {expr: `x]`, err: "unbalanced"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			names, err := promqlMetricNames(tc.expr)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.names, names)
		})
	}
}
