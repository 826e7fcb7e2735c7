"""presets: the toy's exact counts by hand; the presets' documented sizes."""

import pytest

from course_lib.presets import PRESETS, ToyConfig, get_config, preset_name

# 1 layer, d 8, 2 heads (head_dim 4), 1 KV head, ff 32, vocab 10
SMALL = ToyConfig(vocab_size=10, n_layers=1, d_model=8, n_heads=2, n_kv_heads=1, d_ff=32, max_seq_len=4)


def test_counts_by_hand():
    # qkv 8*(2+2)*4 = 128, out 8*8 = 64, mlp 2*8*32 = 512 -> 704; lm head 8*10 = 80 -> 784
    assert SMALL.matmul_params() == 784
    # norms (2*1+1)*8 = 24, embedding 80
    assert SMALL.n_params() == 784 + 24 + 80
    assert SMALL.weight_bytes("fp32") == 808 * 4
    # K and V, 1 layer, 1 KV head of 4 values, 2 bytes: 16 B per token; 4 slots x batch 3
    assert SMALL.kv_bytes_per_token("fp16") == 16
    assert SMALL.kv_cache_bytes(batch=3, precision="fp16") == 3 * 4 * 16
    # dense 2*1*3*784, attention 4*1 layer*2 heads*4*3 new*(2 past + 3) keys
    assert SMALL.forward_flops(n_tokens=3, past=2) == 2 * 3 * 784 + 4 * 2 * 4 * 3 * 5


def test_decode_components_by_hand():
    parts = SMALL.decode_components("fp32", context_len=5)
    assert parts["embedding lookup (one row)"] == 8 * 4
    assert parts["attention projections (Q, K, V, output)"] == (128 + 64) * 4
    assert parts["KV cache reads"] == 5 * 2 * 4 * 4
    assert parts["MLP (up and down)"] == 512 * 4
    assert parts["norms"] == 24 * 4
    assert parts["LM head (vocabulary projection)"] == 80 * 4


def test_preset_sizes_match_their_comments():
    # the comments in presets.py quote these (MB = 1e6 bytes)
    assert PRESETS["tiny"].weight_bytes("fp32") / 1e6 == pytest.approx(0.43, abs=0.005)
    assert PRESETS["cpu-l"].weight_bytes("fp32") / 1e6 == pytest.approx(234.9, abs=0.05)
    assert PRESETS["7b"].weight_bytes("bf16") / 1e9 == pytest.approx(13.1, abs=0.05)
    assert PRESETS["7b"].n_params() / 1e9 == pytest.approx(6.70, abs=0.005)


def test_defaults_and_lookup():
    cfg = ToyConfig(vocab_size=16, n_layers=1, d_model=8, n_heads=2, max_seq_len=4)
    assert cfg.n_kv_heads == 2 and cfg.d_ff == 32 and cfg.head_dim == 4
    assert get_config(" CPU-L ") is PRESETS["cpu-l"] and get_config(cfg) is cfg
    assert preset_name(PRESETS["cpu-m"]) == "cpu-m" and preset_name(cfg) == "custom"


@pytest.mark.parametrize("kwargs, name", [
    (dict(d_model=10, n_heads=3), "d_model"),
    (dict(n_heads=4, n_kv_heads=3), "n_heads"),
    (dict(n_layers=0), "n_layers"),
    (dict(n_layers=2.0), "n_layers"),
    (dict(norm_eps=0), "norm_eps"),
])
def test_bad_shapes_name_the_argument(kwargs, name):
    base = dict(vocab_size=16, n_layers=1, d_model=8, n_heads=2, max_seq_len=4)
    with pytest.raises(ValueError, match=name):
        ToyConfig(**{**base, **kwargs})
    with pytest.raises(ValueError, match="presets"):
        get_config("gpt-5")
