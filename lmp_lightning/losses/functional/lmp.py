"""Loss max-pooling over tensors: Rota Bulò, Neuhold and Kontschieder, "Loss Max-Pooling for
Semantic Image Segmentation", CVPR 2017 (Eqs. 4-5, Theorem 1, Section 3.2, Algorithm 1)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["check_p", "lmp_weights", "loss_max_pooling", "resolve_m"]


def check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"p must be a real number >= 1, got {p!r}")
    if not p >= 1:  # NaN too; no math.isnan, which breaks a compiled graph on a symbolic float
        raise ValueError(
            f"p must be >= 1 (p = 1 is top-K pooling, larger p spreads the weights), got p={p}"
        )
    return float(p)


def lmp_weights(
    losses: Tensor,
    p: float,
    m: float = 0.25,
    valid: Tensor | None = None,
    *,
    m_pixels: float | Tensor | None = None,
) -> Tensor:
    r"""Optimal pixel weighting :math:`w^*` of loss max-pooling.

    Solves, for every row of ``losses`` independently, Eq. (4) of Rota Bulò et al. 2017,

    .. math:: \max \{ w \cdot \ell : \|w\|_p \le \gamma, \|w\|_\infty \le \tau \},

    over the set :math:`\mathcal{W}` of Eq. (5), with :math:`\gamma = n^{-1/q}`,
    :math:`q = p / (p - 1)`, :math:`\tau = \gamma / m^{1/p}` and :math:`n` the number of valid
    entries of the row. The solution is the closed form of Theorem 1 (``p > 1``) and of
    Section 3.2 (``p = 1``). The row's pooled loss is ``(w * losses).sum(-1)``.

    Implementation notes:

    * Only the ``ceil(m)`` highest losses of a row are ordered (``torch.topk``): the optimal set
      :math:`\mathcal{J}^*` of pixels at the bound :math:`\tau` has fewer than ``m`` elements
      (appendix, proof of Theorem 1), so Algorithm 1's walk can be taken from the top.
    * The walk runs in float64 over those ``ceil(m)`` losses, divided by the row's maximum (the
      paper's implementation note) and in the log domain: :math:`\ell^q` with ``q`` near 1000
      (``p = 1.001``) neither underflows nor overflows. The test :math:`\eta > 0` is an exact
      sign test, without epsilon. The passes over every pixel (the sum outside the top, the
      weights) run in float32 for float32 losses when ``q <= 9`` (``p >= 1.125``), where their
      error stays below 1e-6 relative, and in float64 otherwise.
    * For ``p = 1`` the remainder :math:`\tau (m - \lfloor m \rfloor)` sits on the highest loss
      outside :math:`\mathcal{J}^*`, a pixel whose loss is :math:`\alpha^*`.
    * Fully vectorised over rows; the only host synchronisations are the input checks and the
      size of the top-k.

    Args:
        losses: ``(B, N)`` non-negative, finite pixel losses. Not differentiated through: the
            weights are a constant of the gradient (Section 4).
        p: the p-norm bound, ``p >= 1`` (``float("inf")`` gives uniform weights).
        m: the minimum number of supported pixels as a fraction in ``(0, 1]`` of each row's
            ``n`` valid entries (at least 1), as :class:`~lmp_lightning.losses.LossMaxPooling`
            takes it.
        m_pixels: the minimum number of supported pixels as a count that replaces ``m``: a
            number ``>= 1`` (at most ``n``: larger values are taken as ``n``), or a ``(B,)``
            tensor with ``1 <= m_pixels <= n`` on every row that has a valid entry.
        valid: optional ``(B, N)`` boolean mask; invalid entries get weight 0 and do not count in
            ``n``. A row with no valid entry gets all zeros.

    Returns:
        ``(B, N)`` weights, float64 for float64 losses and float32 otherwise.

    Raises:
        ValueError: ``p < 1``, ``m`` outside ``(0, 1]`` (a count is ``m_pixels``), a
            ``m_pixels`` tensor out of ``[1, n]``, negative or non-finite losses, or shapes that
            do not match.
        TypeError: ``losses`` is not a floating tensor or ``valid`` is not boolean.

    Example:
        >>> losses = torch.tensor([[0.1, 2.0, 0.5, 0.3]], dtype=torch.float64)
        >>> w = lmp_weights(losses, p=1.0, m=0.5)  # half of the 4 pixels
        >>> w
        tensor([[0.0000, 0.5000, 0.5000, 0.0000]], dtype=torch.float64)
        >>> (w * losses).sum(-1)  # p = 1: the mean of the m highest losses
        tensor([1.2500], dtype=torch.float64)
        >>> lmp_weights(losses, p=1.0, m_pixels=2)  # the same, as a count
        tensor([[0.0000, 0.5000, 0.5000, 0.0000]], dtype=torch.float64)
    """
    p = check_p(p)
    if not isinstance(losses, Tensor) or not losses.is_floating_point():
        raise TypeError(
            f"losses must be a floating-point tensor, got {type(losses).__name__}"
            + (f" of dtype {losses.dtype}" if isinstance(losses, Tensor) else "")
        )
    if losses.ndim != 2:
        raise ValueError(f"losses must have shape (B, N), got {tuple(losses.shape)}")
    B, N = losses.shape
    device = losses.device
    out_dtype = torch.promote_types(losses.dtype, torch.float32)
    if valid is None:
        valid = torch.ones_like(losses, dtype=torch.bool)
    else:
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be a bool tensor, got dtype {valid.dtype}")
        if valid.shape != losses.shape:
            raise ValueError(
                f"valid has shape {tuple(valid.shape)} but losses has shape {tuple(losses.shape)}"
            )
    if B * N == 0:
        return torch.zeros(B, N, dtype=out_dtype, device=device)
    n = valid.sum(-1)  # (B,)
    has = n > 0
    if isinstance(m_pixels, Tensor):
        m_t = m_pixels.to(device=device, dtype=torch.float64)
    elif m_pixels is not None:
        if isinstance(m_pixels, bool) or not isinstance(m_pixels, (int, float)):
            raise TypeError(f"m_pixels must be a number >= 1 or a tensor, got {m_pixels!r}")
        if not m_pixels >= 1:
            raise ValueError(f"m_pixels must be >= 1, got m_pixels={m_pixels}")
        m_t = torch.full((B,), float(m_pixels), dtype=torch.float64, device=device)
        m_t = m_t.minimum(n.clamp(min=1).to(torch.float64))
    else:
        if isinstance(m, Tensor) or (isinstance(m, (int, float)) and m > 1):
            raise ValueError(
                f"m is a fraction of each row's valid entries, in (0, 1], got m={m!r}; give a "
                "pixel count (or a (B,) tensor of counts) as m_pixels="
            )
        m_t = resolve_m(m, n)
    if m_t.ndim == 0:
        m_t = m_t.expand(B)
    if m_t.shape != (B,):
        raise ValueError(
            f"m_pixels must be a number or a ({B},) tensor, got shape {tuple(m_t.shape)}"
        )
    x = losses.detach()
    bad_m = has & ~((m_t >= 1) & (m_t <= n))
    bad_x = (valid & ~(x >= 0)).any() | ~torch.isfinite(
        x.masked_fill(~valid, 0.0).sum(dtype=torch.float64)
    )
    if bool(bad_x | bad_m.any()):  # one host synchronisation for both checks
        if bool(bad_x):
            values = x[valid & ~(torch.isfinite(x) & (x >= 0))]
            raise ValueError(
                "losses must be finite and non-negative on valid entries; got "
                f"{values[:5].tolist()}"
            )
        rows = bad_m.nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"m_pixels must satisfy 1 <= m_pixels <= n (valid entries of the row); rows {rows} "
            f"have m_pixels={m_t[rows].tolist()} and n={n[rows].tolist()}"
        )
    k = min(N, int(torch.ceil(torch.where(has, m_t, 1.0)).max().item()))
    return _lmp_weights(losses, p, m_t, valid, n, k)


FLOAT32_MAX_Q = 9.0
"""Above this ``q = p / (p - 1)`` (below ``p = 1.125``) the per-pixel passes of Theorem 1 run in
float64 for float32 losses: a float32 ``log`` carries a relative error of about 6e-8, which the
power ``q - 1`` of the weights multiplies (at most 5e-7 for ``q <= 9``)."""


def _lmp_weights(losses: Tensor, p: float, m_t: Tensor, valid: Tensor, n: Tensor, k: int) -> Tensor:
    """:func:`lmp_weights` on checked input: ``m_t`` the ``(B,)`` float64 values of m, ``n`` the
    valid counts, ``k >= ceil(m)`` on every row with a valid entry (and at most ``N``): the size
    of the ordered top."""
    B, N = losses.shape
    out_dtype = torch.promote_types(losses.dtype, torch.float32)
    if B * N == 0:
        return torch.zeros(B, N, dtype=out_dtype, device=losses.device)
    has = n > 0
    # Rows without a valid entry are computed with harmless stand-ins and give zero weights.
    n_f = n.clamp(min=1).to(torch.float64)
    m_t = torch.where(has, m_t, torch.ones_like(m_t))
    if p == math.inf:  # q = 1: gamma = tau = 1/n, the uniform weighting
        w = (1.0 / n_f)[:, None].expand(B, N).masked_fill(~(valid & has[:, None]), 0.0)
    elif p == 1.0:
        # Section 3.2: tau = 1/m on the floor(m) highest losses, tau * (m - floor(m)) on the next.
        keys = losses.detach().to(out_dtype).masked_fill(~valid, -1.0)  # below every loss
        idx = keys.topk(k, dim=-1, sorted=True).indices
        ranks = torch.arange(k, device=losses.device)
        share = (m_t[:, None] - ranks).clamp(0.0, 1.0) * (ranks < n[:, None])
        w = torch.zeros_like(keys, dtype=torch.float64).scatter(-1, idx, share / m_t[:, None])
    else:
        w = _lmp_weights_p_above_one(losses, valid, n_f, m_t, p, k)
    return w.to(out_dtype)


def _reverse_scan(scan: Callable[..., Tensor], x: Tensor) -> Tensor:
    """``scan`` (``torch.cumsum`` or ``torch.logcumsumexp``) of every row from its end."""
    return scan(x.flip(-1), dim=-1).flip(-1)


_eager_reverse_scan = torch.compiler.disable(_reverse_scan)


def _suffix_scan(scan: Callable[..., Tensor], x: Tensor) -> Tensor:
    """:func:`_reverse_scan`; under ``torch.compile`` on a GPU it runs eagerly (one graph
    break): Inductor's Triton code for a long float64 scan fails to generate (torch 2.11, "list
    indices must be integers or slices, not NoneType"). On CPU it is compiled with the rest."""
    if x.is_cuda and torch.compiler.is_compiling():
        return _eager_reverse_scan(scan, x)
    return _reverse_scan(scan, x)


def _lmp_weights_p_above_one(
    losses: Tensor, valid: Tensor, n_f: Tensor, m_t: Tensor, p: float, k: int
) -> Tensor:
    """Theorem 1 (p > 1) in the log domain: the walk of Algorithm 1 in float64 over the ``k``
    highest losses only; the per-pixel passes in float32 for float32 (or lower) losses when
    ``q <= FLOAT32_MAX_Q``, in float64 otherwise."""
    B = losses.shape[0]
    device = losses.device
    q = p / (p - 1.0)
    exact = losses.dtype == torch.float64 or q > FLOAT32_MAX_Q
    bulk = torch.float64 if exact else torch.float32
    tau = torch.exp(-torch.log(n_f) / q - torch.log(m_t) / p)
    N = losses.shape[1]
    more = N > k  # some losses lie outside the top k
    keys = losses.detach().to(bulk).masked_fill(~valid, -1.0)  # invalid below every loss
    # The k highest, highest first, and the next one: the largest outside the top k. Every
    # size below is written as exactly k, k + 1 or 1 (narrow, an index and None, never a slice
    # whose length is a min): under dynamic shapes Inductor (torch 2.14) reads a dimension of
    # size 1 that it cannot prove to be 1, such as top[:, :1] of length min(1, min(N, k + 1)),
    # as unbroadcast, at every column of the (B, N) tensor it is broadcast to.
    top, idx = keys.topk(k + 1 if more else k, dim=-1, sorted=True)
    # Normalise by the row's maximum (implementation note of Section 4); w* is unchanged.
    peak = top[:, 0, None].to(torch.float64)
    scale = torch.where(peak > 0, peak, torch.ones_like(peak))
    # log of (l / peak)^q: -inf for zero losses and invalid entries.
    log_top = torch.log(top.to(torch.float64).clamp(min=0.0) / scale).mul_(q)
    q_log_x = keys.clamp_(min=0.0).div_(scale.to(bulk)).log_().mul_(q)
    del keys
    neg_inf = torch.full((), -math.inf, dtype=torch.float64, device=device)  # no host copy
    if more:  # log <l^q> outside the top k: shifted by its largest term, summed in float64
        shift = log_top[:, k, None]
        shift = torch.where(shift > -math.inf, shift, torch.zeros_like(shift))
        outside = q_log_x.sub(shift.to(bulk)).exp_().scatter_(-1, idx.narrow(-1, 0, k), 0.0)
        log_out = torch.log(outside.sum(-1, dtype=torch.float64)) + shift[:, 0]
        del outside
    else:
        log_out = neg_inf.expand(B)
    log_top = log_top.narrow(-1, 0, k)
    ranks = torch.arange(k, device=device)  # 0-based rank j: the (j+1)-th highest loss
    c = m_t[:, None] - ranks
    # eta of the (j+1)-th highest loss, (m - j) l^q - <l^q> over all but the j highest, by an
    # exact sign test (no epsilon). It does not increase with j while m - j > 0, so Algorithm
    # 1's walk stops at the lowest-ranked loss with eta > 0: J* is every loss above it.
    if exact:  # in the log domain: l^q spans more than float64 near p = 1
        suffix = _suffix_scan(torch.logcumsumexp, log_top)  # ranks >= j
        suffix = torch.cat([suffix, neg_inf.expand(B, 1)], dim=-1)  # (B, k + 1)
        log_rest = torch.logaddexp(suffix, log_out[:, None])  # <l^q> but the j highest
        eta_pos = (c > 0) & (torch.log(c.clamp(min=1e-300)) + log_top > log_rest.narrow(-1, 0, k))
        k_star = torch.where(eta_pos, ranks + 1, torch.zeros_like(ranks)).amax(-1)  # |J*|
        q_log_alpha = log_rest.gather(-1, k_star[:, None]) - torch.log(m_t - k_star)[:, None]
    else:  # q <= 9: (l / peak)^q >= 1e-306 for every float32 ratio that matters; linear sums
        top_q = log_top.exp()
        suffix = _suffix_scan(torch.cumsum, top_q)  # ranks >= j, summed from the smallest
        rest = torch.cat([suffix, suffix.new_zeros(B, 1)], dim=-1) + log_out.exp()[:, None]
        eta_pos = (c > 0) & (c * top_q > rest.narrow(-1, 0, k))
        k_star = torch.where(eta_pos, ranks + 1, torch.zeros_like(ranks)).amax(-1)  # |J*|
        q_log_alpha = torch.log(rest.gather(-1, k_star[:, None]) / (m_t - k_star)[:, None])
    # Theorem 1: tau on J* (losses above alpha*), tau (l / alpha*)^(q-1) elsewhere, written
    # min(tau, exp((q - 1) / q (q log l - q log alpha*) + log tau)). If alpha* = 0, every loss
    # outside J* is zero (log -inf, weight 0) and J* is exactly the positive losses.
    q_log_alpha = q_log_alpha.clamp(min=torch.finfo(bulk).min).to(bulk)
    log_tau = torch.log(tau)[:, None].to(bulk)
    w = q_log_x.sub_(q_log_alpha).mul_((q - 1.0) / q).add_(log_tau).exp_()
    return torch.minimum(w, tau[:, None].to(bulk), out=w)


def loss_max_pooling(
    losses: Tensor,
    valid: Tensor,
    p: float,
    m: float,
    m_pixels: int | None = None,
    *,
    check: bool = True,
) -> Tensor:
    """Loss max-pooling of every row (image) of pixel losses, Eq. (4) of Rota Bulò et al. 2017.

    The weights of :func:`lmp_weights` are held fixed (detached), so the gradient is that of
    ``w* . loss`` (Section 4).

    Args:
        losses: ``(B, N)`` non-negative pixel losses (differentiable).
        valid: ``(B, N)`` boolean mask of the pixels that take part.
        p: the p-norm bound, ``>= 1``.
        m: fraction of each row's valid pixels, in ``(0, 1]`` (at least 1 pixel).
        m_pixels: an absolute pixel count ``>= 1`` (at most the row's valid pixels) that
            replaces ``m``.
        check: check that the valid losses are finite and non-negative (one pass and one host
            synchronisation). The loss classes pass ``False``: their pixel losses are
            cross-entropies, and they check the pooled value instead.

    Returns:
        ``(B,)`` pooled losses; 0 (with a graph) for rows without a valid pixel.

    Example:
        >>> losses = torch.tensor([[0.1, 2.0, 0.5, 0.3]])
        >>> loss_max_pooling(losses, losses > 0, p=1.0, m=0.5)  # mean of the 2 highest
        tensor([1.2500])
    """
    n = valid.sum(-1)
    m_rows = resolve_m(m, n, m_pixels)
    if check:
        w = lmp_weights(losses, p, valid=valid, m_pixels=m_rows)
    else:  # the size of the ordered top from the arguments alone: no host synchronisation
        N = losses.shape[-1]
        k = min(N, m_pixels if m_pixels is not None else max(1, math.ceil(m * N)))
        w = _lmp_weights(losses, check_p(p), m_rows, valid, n, k)
    return (w.to(losses.dtype) * losses).sum(-1)


def resolve_m(m: float, n: Tensor, pixels: int | None = None) -> Tensor:
    """Per-row ``m`` of loss max-pooling: a fraction of each row's valid pixels, or a count.

    Args:
        m: the fraction of each row's ``n`` valid pixels, in ``(0, 1]`` (at least 1 pixel). An
            int is read as a fraction too (YAML and the command line parse ``1`` as an int):
            ``1`` is the whole row.
        n: ``(B,)`` valid pixel counts.
        pixels: an absolute pixel count ``>= 1`` (at most ``n``) that replaces ``m``.

    Returns:
        ``(B,)`` float64 values of ``m`` with ``1 <= m <= max(n, 1)``.

    Raises:
        ValueError: ``m`` outside ``(0, 1]``, or ``pixels < 1``.
        TypeError: ``m`` is not a number or ``pixels`` not an int.

    Example:
        >>> resolve_m(0.25, torch.tensor([100, 2, 0]))
        tensor([25.,  1.,  1.], dtype=torch.float64)
        >>> resolve_m(0.25, torch.tensor([100, 4]), pixels=10)
        tensor([10.,  4.], dtype=torch.float64)
    """
    n_f = n.to(torch.float64)
    upper = n_f.clamp(min=1.0)
    if pixels is not None:
        if isinstance(pixels, bool) or not isinstance(pixels, int):
            raise TypeError(f"a pixel count must be an int >= 1, got {pixels!r}")
        if pixels < 1:
            raise ValueError(f"a pixel count must be an int >= 1, got {pixels}")
        return torch.full_like(n_f, float(pixels)).minimum(upper)
    if isinstance(m, bool) or not isinstance(m, (int, float)):
        raise TypeError(f"m must be a fraction in (0, 1], got {m!r}")
    if not (0 < m <= 1):
        raise ValueError(
            f"m is a fraction of the valid pixels and must be in (0, 1], got m={m}; "
            "give an absolute pixel count as m_pixels (k_pixels for bootstrapping)"
        )
    return (float(m) * n_f).clamp(min=1.0).minimum(upper)
