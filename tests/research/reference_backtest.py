"""An independent reference of the research kernel: plain loops over bars, money in currency, nothing vectorised.

Written apart from `research/` and importing nothing from it (nor numpy): what the kernel's docs promise,
computed the slow, obvious way. A book of cash and per-symbol holdings (in currency) is walked one close at
a time: decide at the close, trade to target (paying fees and slippage on the traded value), let the bar's
prices move the holdings, liquidate at the end.
"""
import math
from datetime import date

PERIODS = 252
VOL_WINDOW = 20
MAX_VOL_SCALE = 2.0


# --- signals: one decision at a time, only the closes seen so far ----------------------------------------

def _sma(prices, t, window):
    if t + 1 < window:
        return None
    values = prices[t + 1 - window:t + 1]
    if all(v == values[-1] for v in values):
        return values[-1]
    return math.fsum(values) / window


def _rsi_series(prices, period):
    """Wilder's RSI, 100 G / (G + L); 50 when both are zero; None before bar `period`."""
    out = [None] * len(prices)
    gains = [0.0] + [max(prices[t] - prices[t - 1], 0.0) for t in range(1, len(prices))]
    losses = [0.0] + [max(prices[t - 1] - prices[t], 0.0) for t in range(1, len(prices))]
    gain = loss = None
    for t in range(period, len(prices)):
        if gain is None:
            gain, loss = sum(gains[1:period + 1]) / period, sum(losses[1:period + 1]) / period
        else:
            gain = (gain * (period - 1) + gains[t]) / period
            loss = (loss * (period - 1) + losses[t]) / period
        out[t] = 50.0 if gain + loss == 0 else 100.0 * gain / (gain + loss)
    return out


def _volatility(prices, t):
    if t < VOL_WINDOW:
        return None
    returns = [prices[s] / prices[s - 1] - 1.0 for s in range(t - VOL_WINDOW + 1, t + 1)]
    mean = sum(returns) / VOL_WINDOW
    return math.sqrt(sum((r - mean) ** 2 for r in returns) / (VOL_WINDOW - 1)) * math.sqrt(PERIODS)


def _hysteresis(values, enter, leave):
    state, out = False, []
    for value in values:
        if value is not None:
            if leave(value):
                state = False
            elif enter(value):
                state = True
        out.append(state)
    return out


def targets(family, params, direction, cap, closes):
    """Target weights per bar (a list of lists), decided at each close."""
    n_bars, n_symbols = len(closes), len(closes[0])
    columns = [[row[i] for row in closes] for i in range(n_symbols)]
    shorts = direction == "long_short"
    out = [[0.0] * n_symbols for _ in range(n_bars)]
    if family == "xs_momentum":
        lookback, k = params["lookback"], params["top_k"]
        side = 2 if shorts else 1
        for t in range(lookback, n_bars):
            momentum = [columns[i][t] / columns[i][t - lookback] - 1.0 for i in range(n_symbols)]
            if max(momentum) == min(momentum):
                continue
            ranked = sorted(range(n_symbols), key=lambda i: (-momentum[i], i))
            for i in ranked[:k]:
                out[t][i] = 1.0 / (side * k)
            if shorts:
                for i in ranked[n_symbols - k:]:
                    out[t][i] = -1.0 / (side * k)
    else:
        for i, prices in enumerate(columns):
            for t, position in enumerate(_positions(family, params, shorts, prices)):
                out[t][i] = position / n_symbols
    for row in out:
        gross = sum(abs(w) for w in row)
        if cap is not None and gross > cap:
            row[:] = [w * (cap / gross) for w in row]
    return out


def _positions(family, params, shorts, prices):
    n_bars = len(prices)
    if family == "buy_and_hold":
        return [1.0] * n_bars
    if family == "sma_crossover":
        out = []
        for t in range(n_bars):
            fast, slow = _sma(prices, t, params["fast"]), _sma(prices, t, params["slow"])
            out.append(0.0 if fast is None or slow is None else
                       1.0 if fast > slow else -1.0 if fast < slow and shorts else 0.0)
        return out
    if family == "ts_momentum":
        lookback, target = params["lookback"], params.get("vol_target")
        out = []
        for t in range(n_bars):
            if t < lookback:
                out.append(0.0)
                continue
            change = prices[t] / prices[t - lookback] - 1.0
            side = 1.0 if change > 0 else -1.0 if change < 0 and shorts else 0.0
            if target is not None:
                vol = _volatility(prices, t)
                side = 0.0 if vol is None else side * (MAX_VOL_SCALE if vol == 0 else min(target / vol, MAX_VOL_SCALE))
            out.append(side)
        return out
    if family == "rsi_mean_reversion":
        strength = _rsi_series(prices, params["period"])
        entry, exit_ = params["entry"], params["exit"]
        long = _hysteresis(strength, lambda v: v < entry, lambda v: v > exit_)
        short = _hysteresis(strength, lambda v: v > 100.0 - entry, lambda v: v < 100.0 - exit_)
        trend = params.get("trend_filter")
        out = []
        for t in range(n_bars):
            is_long, is_short = long[t], short[t] and shorts
            if trend is not None:
                average = _sma(prices, t, trend)
                is_long = is_long and average is not None and prices[t] > average
                is_short = is_short and average is not None and prices[t] < average
            out.append((1.0 if is_long else 0.0) - (1.0 if is_short else 0.0))
        return out
    raise ValueError(family)


# --- the book --------------------------------------------------------------------------------------------

def _trades_today(rule, j, day, previous_day, target, previous_target):
    if j == 0 or rule == "daily":
        return True
    if rule == "never":
        return target != previous_target
    if rule == "weekly":
        return day.isocalendar()[:2] != previous_day.isocalendar()[:2]
    return (day.year, day.month) != (previous_day.year, previous_day.month)


def backtest(*, closes, days, family, params, direction="long_only", rebalance, cap=2.0, fee_bps, slippage_bps,
             start, end, benchmark=None):
    """Bars start..end-1; `closes` rows of floats, `days` datetime.date per row. Returns per-bar records."""
    k = (fee_bps + slippage_bps) / 1e4
    wanted = targets(family, params, direction, cap, closes[:end])
    n_symbols = len(closes[0])
    cash, held = 1.0, [0.0] * n_symbols
    record = {name: [] for name in ("net", "weights", "turnover", "benchmark", "drifted", "costs")}
    bench_start = closes[start - 1] if benchmark is None else [benchmark[start - 1]]
    for t in range(start, end):
        j = t - start
        value = cash + sum(held)
        before = [h / value for h in held]
        target = wanted[t - 1]
        traded = [0.0] * n_symbols
        costs = [0.0] * n_symbols  # fees booked to each symbol's position in this bar
        if _trades_today(rebalance, j, days[t - 1], days[t - 2] if t >= 2 else None, target,
                         wanted[t - 2] if t >= 2 else None):
            traded = [abs(target[i] - before[i]) for i in range(n_symbols)]
            after_costs = value * (1.0 - k * sum(traded))
            held = [target[i] * after_costs for i in range(n_symbols)]
            cash = after_costs - sum(held)
            for i in range(n_symbols):
                # Closing (a sign change) belongs to the old position's last bar; opening or resizing to this one.
                closing = abs(before[i]) if _side(before[i]) not in (0, _side(target[i])) else 0.0
                if closing:
                    record["costs"][j - 1][i] += k * closing
                costs[i] += k * (traded[i] - closing)
        valued = cash + sum(held)
        weight = [h / valued for h in held]
        held = [held[i] * closes[t][i] / closes[t - 1][i] for i in range(n_symbols)]
        closed = cash + sum(held)
        drifted = [h / closed for h in held]
        bar_turnover = sum(traded)
        if t == end - 1:  # liquidate at the last close, with cost
            bar_turnover += sum(abs(w) for w in drifted)
            for i in range(n_symbols):
                costs[i] += k * abs(drifted[i])
            closed *= 1.0 - k * sum(abs(w) for w in drifted)
        record["net"].append(closed / value - 1.0)
        record["weights"].append(weight)
        record["turnover"].append(bar_turnover)
        record["drifted"].append(drifted)
        record["costs"].append(costs)
        prices = closes[t] if benchmark is None else [benchmark[t]]
        previous = closes[t - 1] if benchmark is None else [benchmark[t - 1]]
        level = sum(p / s for p, s in zip(prices, bench_start)) / len(prices)
        before_level = sum(p / s for p, s in zip(previous, bench_start)) / len(prices)
        record["benchmark"].append(level / before_level - 1.0)
    return record


def window_trades(record, first, stop, *, closes, days, start, symbols, k):
    """Trades entered in bars first..stop-1, valued to the window's end (an open one less its exit cost)."""
    found = []
    weights = record["weights"]
    n_bars = len(weights)
    for i, symbol in enumerate(symbols):
        for entry in range(first, stop):
            side = _side(weights[entry][i])
            if side == 0 or (entry > 0 and _side(weights[entry - 1][i]) == side):
                continue
            last = entry
            while last + 1 < n_bars and _side(weights[last + 1][i]) == side:
                last += 1
            is_open = last >= stop
            last = min(last, stop - 1)
            pnl = 0.0
            for j in range(entry, last + 1):
                move = closes[start + j][i] / closes[start + j - 1][i] - 1.0
                pnl += weights[j][i] * move - record["costs"][j][i]
            if is_open:
                pnl -= k * abs(record["drifted"][last][i])
            found.append((entry, i, {
                "symbol": symbol,
                "side": "long" if side > 0 else "short",
                "entry_date": days[start + entry - 1].isoformat(),
                "exit_date": None if is_open else days[start + last].isoformat(),
                "bars": last - entry + 1,
                "return": side * (closes[start + last][i] / closes[start + entry - 1][i] - 1.0),
                "pnl": pnl,
            }))
    return [trade for _, _, trade in sorted(found, key=lambda row: row[:2])]


def _side(weight):
    return 1 if weight > 0 else -1 if weight < 0 else 0


def metrics(net, benchmark, *, weights, turnover, trades, cash_rate=0.0):
    """The headline figures, from their definitions."""
    n = len(net)
    equity, peak, drawdown, curve = 1.0, 1.0, 0.0, []
    for r in net:
        equity *= 1.0 + r
        curve.append(equity)
        peak = max(peak, equity)
        drawdown = min(drawdown, equity / peak - 1.0)
    bench_equity = 1.0
    for r in benchmark:
        bench_equity *= 1.0 + r
    cash = cash_rate / PERIODS
    mean = sum(net) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in net) / (n - 1))
    bench_mean = sum(benchmark) / n
    bench_var = sum((b - bench_mean) ** 2 for b in benchmark) / (n - 1)
    cov = sum((r - mean) * (b - bench_mean) for r, b in zip(net, benchmark)) / (n - 1)
    beta = cov / bench_var
    active = [r - b for r, b in zip(net, benchmark)]
    active_mean = sum(active) / n
    tracking = math.sqrt(sum((a - active_mean) ** 2 for a in active) / (n - 1))
    pnl = [t["pnl"] for t in trades]
    wins, losses = [p for p in pnl if p > 0], [p for p in pnl if p < 0]
    return {
        "curve": curve,
        "total_return": equity - 1.0,
        "sharpe": (mean - cash) / std * math.sqrt(PERIODS),
        "max_drawdown": drawdown,
        "turnover": sum(turnover) / n * PERIODS,
        "gross_exposure": sum(sum(abs(w) for w in row) for row in weights) / n,
        "time_in_market": sum(1 for row in weights if any(w != 0 for w in row)) / n,
        "trades": len(trades),
        "win_rate": len(wins) / len(pnl) if pnl else None,
        "profit_factor": sum(wins) / -sum(losses) if losses else None,
        "beta": beta,
        "alpha": ((mean - cash) - beta * (bench_mean - cash)) * PERIODS,
        "tracking_error": tracking * math.sqrt(PERIODS),
        "information_ratio": active_mean / tracking * math.sqrt(PERIODS),
        "excess_return": equity - bench_equity,
    }


def parse_day(text):
    return date.fromisoformat(text)
