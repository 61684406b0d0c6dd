"""The pipeline picture at the top of every lesson: well-formed SVG, every stage drawn, the lesson's stages lit."""

import xml.etree.ElementTree as ET

import pytest

from workbook.errors import WorkbookError
from workbook.widgets.pipeline import BOXES, HIGHLIGHT, LESSON_STAGES, pipeline_svg, show_pipeline

SVG = "{http://www.w3.org/2000/svg}"


def stages(svg: str) -> dict[str, ET.Element]:
    return {g.get("data-stage"): g for g in ET.fromstring(svg).iter(f"{SVG}g")}


@pytest.mark.parametrize("lesson", sorted(LESSON_STAGES))
def test_each_lesson_lights_exactly_its_stages(lesson):
    drawn = stages(show_pipeline(lesson).data)
    assert set(drawn) == set(BOXES)  # every stage and cache is on every lesson's picture
    lit = {key for key, g in drawn.items() if g.get("data-lit") == "true"}
    assert lit == set(LESSON_STAGES[lesson]) and lit
    for key, g in drawn.items():
        assert (g.find(f"{SVG}rect").get("fill") == HIGHLIGHT) == (key in lit)
        assert BOXES[key][3] in "".join(g.itertext())  # the label is text a reader (and a screen reader) gets


def test_unknown_stages_and_lessons_are_refused():
    with pytest.raises(WorkbookError, match="prefix"):
        pipeline_svg(["prefix", "vector database"])
    with pytest.raises(WorkbookError, match="lessons are"):
        show_pipeline(13)


def test_the_palette_becomes_plotlys_default_and_leaves_orange_and_blue_their_meaning():
    import plotly.graph_objects as go
    import plotly.io as pio

    from workbook.widgets.style import CHART_COLOURS, PROVENANCE_COLOURS, use_workbook_palette

    before = pio.templates.default
    try:
        use_workbook_palette()
        assert list(go.Figure().layout.template.layout.colorway) == CHART_COLOURS
        assert not set(PROVENANCE_COLOURS.values()) & set(CHART_COLOURS)
    finally:
        pio.templates.default = before
