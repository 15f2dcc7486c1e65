// The kernel's (Linux 6.12 lib/maple_tree.c) tree heights for the scenarios of
// ../kernel_heights.rs, run-length encoded (height, consecutive checks). Recorded data: see
// the module docs of ../kernel_heights.rs.
const KERNEL: &[(&str, &[(usize, usize)])] = &[
    (
        "erase-asc-a",
        &[(4, 280), (3, 648), (2, 66), (1, 6), (0, 1)],
    ),
    ("erase-asc-p", &[(3, 888), (2, 106), (1, 6), (0, 1)]),
    (
        "erase-desc-a",
        &[(4, 273), (3, 648), (2, 71), (1, 8), (0, 1)],
    ),
    ("erase-desc-p", &[(3, 881), (2, 111), (1, 8), (0, 1)]),
    (
        "erase-rand-a",
        &[(4, 667), (3, 285), (2, 42), (1, 6), (0, 1)],
    ),
    ("erase-rand-p", &[(3, 913), (2, 81), (1, 6), (0, 1)]),
    ("random-1-p", &[(1, 8), (2, 12), (1, 2), (2, 2978)]),
    (
        "random-2-a",
        &[(0, 1), (1, 14), (2, 1176), (3, 9), (2, 1800)],
    ),
    ("random-3-p", &[(0, 1), (1, 18), (2, 2981)]),
    ("random-4-a", &[(0, 1), (1, 11), (2, 2988)]),
    (
        "ranges-a",
        &[
            (1, 15),
            (2, 135),
            (3, 1179),
            (4, 3),
            (1, 15),
            (2, 135),
            (3, 1111),
            (4, 1),
        ],
    ),
    (
        "ranges-p",
        &[(1, 15), (2, 225), (3, 1092), (1, 15), (2, 225), (3, 1022)],
    ),
    ("spanning-a", &[(4, 18)]),
    ("spanning-p", &[(4, 18)]),
];
