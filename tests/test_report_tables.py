"""The numbers beside the pictures, from a real sweep (test_report's, on the emulated Cortex-M4 and the host board):
the MAC columns, the per-variant table on the report's first screen, the per-layer section and provenance.

Every expected value is computed here from results.csv, not taken from the report's own code.
"""

import json
import re

import numpy as np
import pytest

from harness.report import build_report, write_report
from harness.report.tables import WHOLE
from harness.results import read_results_csv
from test_report import chromium, run_dir  # noqa: F401  (run_dir: the real sweep, a fixture)


@pytest.fixture(scope="module")
def frame(run_dir):  # noqa: F811
    return read_results_csv(run_dir / "results.csv")


def test_rows_count_macs_whole_and_per_layer(frame):
    assert frame.macs.nunique() == 1 and frame.macs.iloc[0] > 0  # the dense computation: one model, one count
    for _, row in frame.iterrows():
        layers = json.loads(row.layer_macs)
        assert sum(layer["macs"] for layer in layers) == row.macs
        assert sum(layer["nonzero_macs"] for layer in layers) == row.nonzero_macs <= row.macs
        assert [layer["layer"] for layer in layers] == list(json.loads(row.layer_latency))
        for layer in layers:
            if layer["op"] in ("CONV_2D", "FULLY_CONNECTED"):  # each output value: one weight row's MACs
                assert layer["macs"] == np.prod(layer["output"]) * np.prod(layer["weights"][1:]), layer
    pruned = frame[frame.target_sparsity == 0.9]
    assert (pruned.nonzero_macs < 0.2 * pruned.macs).all()


def test_latency_per_mac_is_in_the_column_of_the_boards_unit(frame):
    emulated, host = frame[frame.board == "mps2_an386"], frame[frame.board == "host"]
    assert np.allclose(emulated.instructions_per_mac, emulated.latency_median / emulated.macs)
    assert np.allclose(host.ns_per_mac, host.latency_median / host.macs)
    assert emulated.ns_per_mac.isna().all() and host.instructions_per_mac.isna().all()
    assert frame.cycles_per_mac.isna().all()  # nothing here counted cycles: an emulator's instructions never are


def table_after(text: str, marker: str) -> tuple[list[str], list[list[str]], list[bool]]:
    """The first HTML table after marker: its header, its cells, and which rows are highlighted."""
    table = text.split(marker, 1)[1].split("<table", 1)[1].split("</table>", 1)[0]
    head = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", table.split("</thead>", 1)[1])
    return head, [re.findall(r"<td>(.*?)</td>", cells) for _, cells in rows], ['class="best"' in a for a, _ in rows]


def test_the_first_screen_is_a_table_of_every_variant(run_dir, frame, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    write_report(build_report([run_dir]), out)
    # Read without scripts: the table is plain HTML, sorting is an extra.
    dom = chromium("--disable-javascript", "--dump-dom", (out / "report.html").as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert summary.index('<h3 id="variants">') < summary.index("Key figures") and "<img" not in summary
    head, rows, best = table_after(summary, '<h3 id="variants">')
    assert head[:6] == ["variant", "sparsity", "achieved", "latency (instructions)", "instructions/MAC", "speedup"]
    for column in ("flash (KiB)", "SRAM static (KiB)", "arena (KiB)", "stack (KiB)", "accuracy (device)"):
        assert column in head
    cell = {name: head.index(name) for name in head}
    emulated = frame[frame.board == "mps2_an386"]
    assert len(rows) == len(emulated)
    for values in rows:
        kernel, target = values[0].split()
        row = emulated[(emulated.kernel == kernel) & (emulated.target_sparsity == int(target[:-1]) / 100)].iloc[0]
        dense = emulated[(emulated.kernel == "dense") & (emulated.target_sparsity == row.target_sparsity)].iloc[0]
        assert values[cell["latency (instructions)"]] == f"{row.latency_median:,.0f}"
        assert values[cell["instructions/MAC"]] == f"{row.latency_median / row.macs:.2f}"
        assert values[cell["speedup"]] == f"{dense.latency_median / row.latency_median:.2f}×"
        assert values[cell["flash (KiB)"]] == f"{row.flash_total / 1024:.1f}"
        assert values[cell["arena (KiB)"]] == f"{row.sram_arena / 1024:.1f}"
        assert values[cell["accuracy (device)"]] == f"{row.accuracy_device:.1%}"
    # The fastest variant within the default floor (dense's accuracy less 1 point) is highlighted and says so.
    floor = emulated[(emulated.kernel == "dense")].sort_values("target_sparsity").accuracy_device.iloc[0] - 0.01
    fastest = emulated[emulated.accuracy_device >= floor].sort_values("latency_median").iloc[0]
    (position,) = [i for i, values in enumerate(rows) if values[0] == f"{fastest.kernel} {fastest.target_sparsity:.0%}"]
    assert best[position] and f"{floor:.1%}" in rows[position][cell["best at"]]
    assert "fastest" in rows[position][cell["best at"]]
    assert sum(best) == sum(1 for values in rows if values[cell["best at"]])


def test_a_click_on_a_column_head_sorts_the_table(run_dir, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    write_report(build_report([run_dir]), out)
    page = (out / "report.html").read_text()
    click = '<script>document.querySelector("table.sortable thead th:nth-child(4)").click();</script>'
    (out / "clicked.html").write_text(page.replace("</body>", click + "</body>"))
    dom = chromium("--dump-dom", (out / "clicked.html").as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    head, rows, _ = table_after(dom.stdout, '<h3 id="variants">')
    assert head[3] == "latency (instructions)"
    latencies = [float(values[3].replace(",", "")) for values in rows]
    assert latencies == sorted(latencies) and latencies != [
        float(v[3].replace(",", "")) for v in table_after(page, '<h3 id="variants">')[1]
    ]


def test_per_layer_tables_of_the_chosen_variant_and_of_dense(run_dir, frame):  # noqa: F811
    report = build_report([run_dir])
    tables = {t.series.board: t for t in report.layers}
    assert set(tables) == {"mps2_an386", "host"}
    t = tables["mps2_an386"]
    emulated = frame[frame.board == "mps2_an386"]
    kernel, target = t.chosen.split()
    sparsity = int(target[:-1]) / 100
    assert kernel != "dense" and t.dense_name == f"dense {target}"
    for rows, kernel_name in ((t.variant, kernel), (t.dense, "dense")):
        row = emulated[(emulated.kernel == kernel_name) & (emulated.target_sparsity == sparsity)].iloc[0]
        latencies = json.loads(row.layer_latency)
        flash = {entry["layer"]: entry for entry in json.loads(row.layer_flash)}
        *layers, total = rows
        assert [r["layer"] for r in layers] == list(latencies)
        for r in layers:
            assert r["latency (instructions)"] == f"{latencies[r['layer']]:,.0f}"
            assert r["share"] == f"{latencies[r['layer']] / sum(latencies.values()):.1%}"
            assert r["values (B)"] == f"{flash[r['layer']]['values']:,}"
            assert r["indices (B)"] == f"{flash[r['layer']]['indices']:,}"
        conv = next(r for r in layers if r["op"] == "CONV_2D")
        assert re.fullmatch(r"\d+(×\d+)+", conv["input"]) and re.fullmatch(r"\d+(×\d+)+", conv["weights"])
        assert conv["format"] == ("dense" if kernel_name == "dense" else flash[conv["layer"]]["format"])
        assert total["layer"] == "all layers" and total["MACs"] == f"{row.macs:,}"
        assert total["nonzero MACs"] == f"{row.nonzero_macs:,}"
    # Per-layer speedup: dense's layer latency over the variant's, at the same sparsity; and the whole inference.
    csr = emulated[(emulated.kernel == "csr") & (emulated.target_sparsity == 0.9)].iloc[0]
    dense = emulated[(emulated.kernel == "dense") & (emulated.target_sparsity == 0.9)].iloc[0]
    speedups = {r["layer"]: r["csr 90%"] for r in t.speedup}
    for layer, latency in json.loads(dense.layer_latency).items():
        assert speedups[layer] == f"{latency / json.loads(csr.layer_latency)[layer]:.2f}×"
    assert speedups[WHOLE] == f"{dense.latency_median / csr.latency_median:.2f}×"


def test_provenance_is_a_table(run_dir, frame, tmp_path):  # noqa: F811
    report = build_report([run_dir])
    facts = {row["board"]: row for row in report.provenance}
    emulated, host = facts["mps2_an386"], facts["host"]
    assert emulated["timing source"] == "qemu-icount-systick" and emulated["latency unit"] == "instructions"
    assert emulated["clock"] == f"{frame[frame.board == 'mps2_an386'].clock_hz.iloc[0] / 1e6:g} MHz"
    assert emulated["compiler"].startswith("arm-none-eabi-gcc") and host["compiler"].startswith("gcc")
    assert emulated["emulator"].startswith("QEMU emulator version") and "-icount shift=0" in emulated["emulator"]
    assert host["emulator"] == "none: host process" and host["timing source"] == "host-clock-monotonic"
    assert "-O2" in emulated["build flags (platformio.ini)"]
    assert emulated["harness (git)"] == frame.harness_sha.iloc[0]
    out = tmp_path / "report"
    write_report(report, out)
    page = (out / "report.html").read_text()
    head, rows, _ = table_after(page, '<h3 id="provenance">')
    assert head == ["", "mps2_an386", "host"]
    assert ["timing source", "qemu-icount-systick", "host-clock-monotonic"] in rows
    assert "## Provenance" in (out / "report.md").read_text()
