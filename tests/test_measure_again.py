"""The "Measure again" view: every click takes a new measurement and shows its sentence; bad input is shown."""

from workbook.widgets.measure_again import MeasureAgain


def test_it_measures_once_at_once_and_again_at_every_click():
    readings = iter([(120.0, 30.0), (118.0, 140.0)])
    view = MeasureAgain(lambda: next(readings), lambda m: f"cold {m[0]:.0f} ms, hit {m[1]:.0f} ms")
    assert view.measurements == [(120.0, 30.0)] and "cold 120 ms, hit 30 ms" in view.text.value
    assert "first run" in view.text.value

    view.button.click()  # what the learner's click does
    assert view.latest == (118.0, 140.0) and len(view.measurements) == 2
    assert "hit 140 ms" in view.text.value and "run 2" in view.text.value
    assert not view.button.disabled and view.button.description == "Measure again"


def test_a_measurement_that_fails_is_shown_and_the_last_good_one_kept():
    readings = iter([1.5, ValueError("The model is gone.")])

    def take():
        reading = next(readings)
        if isinstance(reading, Exception):
            raise reading
        return reading

    view = MeasureAgain(take, lambda m: f"{m} s")
    view.run()
    assert view.measurements == [1.5] and "1.5 s" in view.text.value
    assert "The model is gone." in view.errors.widget.value
    assert not view.button.disabled  # the learner can try again
