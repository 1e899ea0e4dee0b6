"""Types of the compiled DTMF kernel (`_dtmf_kernel.pyx`)."""

import numpy as np
import numpy.typing as npt

class Kernel:
    def __init__(
        self,
        *,
        hops: int,
        sub: int,
        gate: float,
        level: float,
        max_step: npt.NDArray[np.float64],
        win_rot: npt.NDArray[np.complex128],
        check_basis: npt.NDArray[np.float32],
        leak: npt.NDArray[np.complex128],
        normal_twist: float,
        reverse_twist: float,
        peak: float,
        harmonic: float,
        energy_ratio: float,
        min_run: int,
        gap_subs: float,
        dip_enter: float,
        dip_leave: float,
        max_miss: int,
        sub_fraction: float,
    ) -> None: ...
    def process(
        self,
        frames: npt.NDArray[np.int16],
        dft: npt.NDArray[np.float32],
        slots: npt.NDArray[np.intp],
        tail_dft: npt.NDArray[np.float32],
        tail_energy: npt.NDArray[np.float32],
        tail_pcm: npt.NDArray[np.int16],
        cand: npt.NDArray[np.int8],
        run: npt.NDArray[np.int32],
        down: npt.NDArray[np.int8],
        miss: npt.NDArray[np.int32],
        gap: npt.NDArray[np.float32],
        ref: npt.NDArray[np.float32],
    ) -> list[tuple[int, int, int, int]]: ...
