"""What the app's lifespan does to the process beyond opening its resources."""

import gc

from tests.helpers import AppFactory


async def test_start_up_objects_are_left_out_of_garbage_collection(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as client:
        # Frozen: full collections no longer rescan what start-up built.
        assert gc.get_freeze_count() > 10_000
        assert (await client.get("/health/live")).status_code == 200
    assert gc.get_freeze_count() == 0  # given back when the app stops
