"""The matrix is derived from copier.yml: check the derivation itself."""

from tests import matrix


def test_every_toggle_choice_appears_in_the_matrix() -> None:
    variants = matrix.all_variants()
    for name, values in matrix.toggles().items():
        assert {variant[name] for variant in variants} == set(values), name


def test_matrix_is_the_full_product_of_the_toggles() -> None:
    expected = 1
    for values in matrix.toggles().values():
        expected *= len(values)
    variants = matrix.all_variants()
    assert len(variants) == expected
    assert len({tuple(sorted(v.items())) for v in variants}) == expected


def test_known_toggles_are_derived() -> None:
    assert {"storage_backend", "email_provider", "token_transport", "deployment"} <= set(
        matrix.toggles()
    )
    assert "python_version" not in matrix.toggles()


def test_defaults_are_valid_choices() -> None:
    for name, value in matrix.defaults().items():
        assert value in matrix.toggles()[name], name


def test_suite_variants_are_every_python_changing_combination() -> None:
    selection = matrix.suite_variants()
    python_toggles = {
        name: values
        for name, values in matrix.toggles().items()
        if name not in matrix.NO_PYTHON_QUESTIONS
    }
    expected = 1
    for values in python_toggles.values():
        expected *= len(values)
    assert len({matrix.python_answers(v) for v in selection}) == len(selection) == expected
    assert selection[0] == matrix.defaults()
