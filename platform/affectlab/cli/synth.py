"""``affectlab synth KIND --out DIR``: write a synthetic corpus with known, planted relations."""

from __future__ import annotations

import time

import click

KIND_NAMES = ("speech-au", "faces", "talking-face", "ravdess", "lma", "visemes")  # == affectlab.data.synth.KINDS
ITEMS_DEFAULT = {"visemes": 10}  # kinds whose default --items is not 20 (rendered video: keep the default quick)


@click.command("synth")
@click.argument("kind", type=click.Choice(KIND_NAMES))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory (new or empty).")
@click.option("--subjects", default=6, show_default=True, type=int, help="Subjects (speakers/identities/actors).")
@click.option("--items", default=None, type=int, help="Recordings per subject.  [default: 20; visemes: 10]")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed; equal seeds give equal files.")
@click.option(
    "--relation",
    type=click.Choice(["planted", "shuffled"]),
    default="planted",
    show_default=True,
    help="'shuffled' pairs each recording with another's labels (control: nothing learnable).",
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Frame side in px (faces: 28, 64, 112; talking-face, visemes: even, 64-512; ravdess --video: even, 64-512).",
)
@click.option("--video", is_flag=True, help="ravdess: also render face videos (full-AV mp4s unless --modalities).")
@click.option(
    "--modalities",
    default=None,
    metavar="LIST",
    help="ravdess: comma-separated modalities to write: full-AV, video-only, audio-only "
    "(default: full-AV with --video, audio-only without).",
)
@click.option(
    "--sentences",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="visemes: one sentence per line (letters and spaces; lower case is upper-cased); "
    "clip j = subject * items + item says line j mod N. Default: the built-in grammar.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it holds an earlier corpus (has a dataset.yaml).")
def command(
    kind: str, out: str, subjects: int, items: int | None, seed: int, relation: str, size: int | None,
    video: bool, modalities: str | None, sentences: str | None, overwrite: bool,
) -> None:
    """Write a synthetic corpus of KIND (media, labels and OUT/dataset.yaml).

    \b
    Kinds:
      speech-au     speech; AU intensities at 25 Hz planted on its prosody (csv adapter)
      faces         rendered face videos; AUs, emotion, valence/arousal (csv adapter)
      talking-face  a real face lip-syncing speech, with transcripts (lrs adapter)
      ravdess       RAVDESS-named emotional speech; --video adds rendered faces (ravdess adapter)
      lma           LMA body-motion features from PAD values (lma adapter)
      visemes       sentences on a real face, one viseme mouth shape per character;
                    --sentences FILE for your own text (lrs adapter)

    The card's 'planted:' key documents what was planted. Check the result with
    'affectlab datasets check OUT/dataset.yaml'.
    """
    from affectlab.data.synth import generate

    options = _kind_options(kind, size, video, modalities, sentences)
    if items is None:
        items = ITEMS_DEFAULT.get(kind, 20)
    total = subjects * items if subjects > 0 and items > 0 else 0
    done = [0]
    start = time.perf_counter()

    def progress(n: int) -> None:
        done[0] += n
        if done[0] == total or done[0] % max(1, total // 10) < n:
            click.echo(f"  {done[0]}/{total} recordings", err=True)

    click.echo(f"synth {kind}: {subjects} subjects x {items} items, seed {seed}, relation {relation}", err=True)
    card = generate(
        kind, out, subjects=subjects, items=items, seed=seed, relation=relation,
        overwrite=overwrite, progress=progress, **options,
    )
    click.echo(f"wrote {total} recordings in {time.perf_counter() - start:.1f} s; card: {card}")


def _kind_options(
    kind: str, size: int | None, video: bool, modalities: str | None, sentences: str | None = None
) -> dict[str, object]:
    """The kind-specific options given on the command line (usage errors for misplaced flags)."""
    if size is not None and kind not in ("faces", "talking-face", "ravdess", "visemes"):
        raise click.UsageError(f"--size applies to faces, talking-face, ravdess and visemes, not {kind}")
    for flag, given in (("--video", video), ("--modalities", modalities is not None)):
        if given and kind != "ravdess":
            raise click.UsageError(f"{flag} applies to ravdess, not {kind}")
    if sentences is not None and kind != "visemes":
        raise click.UsageError(f"--sentences applies to visemes, not {kind}")
    options: dict[str, object] = {}
    if size is not None:
        options["size"] = size
    if video:
        options["video"] = True
    if modalities is not None:
        options["modalities"] = modalities
    if sentences is not None:
        options["sentences"] = sentences
    return options
