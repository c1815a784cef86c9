//! Tests of event pictures, box drawing, strips, PNG writing and animations.

use std::path::PathBuf;

use evdet_report::picture::{
    class_color, decode_png, draw_boxes, encode_png, event_image, load_png, save_png, scale,
    side_by_side, BoxStyle, DrawBox, RgbImage, EVENT_MORE_OFF, EVENT_MORE_ON, EVENT_NONE,
};
use evdet_report::{write_gif, write_video};

fn names() -> Vec<String> {
    ["pedestrian", "car", "bicycle"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn event_image_colours_follow_on_minus_off() {
    // 4 channels (2 OFF, 2 ON), 1×4 pixels.
    let (c, h, w) = (4, 1, 4);
    #[rustfmt::skip]
    let hist: Vec<u8> = vec![
        // OFF channel 0, 1
        1, 0, 2, 0,
        0, 0, 1, 0,
        // ON channel 2, 3
        0, 1, 1, 0,
        0, 1, 2, 0,
    ];
    // pixel 0: off 1 on 0 -> black; 1: off 0 on 2 -> white; 2: off 3 on 3 -> grey; 3: none -> grey
    let img = event_image(&hist, c, h, w).unwrap();
    assert_eq!((img.width, img.height), (4, 1));
    assert_eq!(img.pixel(0, 0), Some(EVENT_MORE_OFF));
    assert_eq!(img.pixel(1, 0), Some(EVENT_MORE_ON));
    assert_eq!(img.pixel(2, 0), Some(EVENT_NONE));
    assert_eq!(img.pixel(3, 0), Some(EVENT_NONE));
    assert_eq!(EVENT_NONE, [127, 127, 127]);
    // Same with f32 counts.
    let histf: Vec<f32> = hist.iter().map(|&v| v as f32).collect();
    assert_eq!(event_image(&histf, c, h, w).unwrap(), img);
    // Wrong sizes are errors, not panics.
    assert!(event_image(&hist, 3, 1, 4).is_err());
    assert!(event_image(&hist[..15], 4, 1, 4).is_err());
}

#[test]
fn boxes_colour_the_right_pixels() {
    let mut img = RgbImage::filled(100, 80, [127, 127, 127]);
    let b = DrawBox {
        x1: 20.0,
        y1: 30.0,
        x2: 60.0,
        y2: 70.0,
        class_id: 1,
        score: Some(0.87),
    };
    draw_boxes(&mut img, &[b], &names(), &BoxStyle::prediction());
    let c = class_color(1);
    // Left and right edges, 2 px thick, inside the box.
    assert_eq!(img.pixel(20, 50), Some(c));
    assert_eq!(img.pixel(21, 50), Some(c));
    assert_eq!(img.pixel(22, 50), Some([127, 127, 127]));
    assert_eq!(img.pixel(59, 50), Some(c));
    assert_eq!(img.pixel(60, 50), Some([127, 127, 127]));
    // Bottom edge.
    assert_eq!(img.pixel(40, 69), Some(c));
    // Interior untouched.
    assert_eq!(img.pixel(40, 50), Some([127, 127, 127]));
    // The label tag sits above the box: filled with the class colour, with dark or light
    // text pixels inside it.
    let tag_row = 25;
    let row: Vec<[u8; 3]> = (20..60).map(|x| img.pixel(x, tag_row).unwrap()).collect();
    assert!(row.iter().filter(|p| **p == c).count() > 5, "tag fill");
    assert!(
        row.iter().any(|p| *p != c && *p != [127, 127, 127]),
        "tag text"
    );
}

#[test]
fn odd_boxes_never_panic() {
    let mut img = RgbImage::filled(50, 40, [127, 127, 127]);
    let odd = [
        (-100.0, -100.0, -50.0, -50.0),
        (40.0, 30.0, 500.0, 400.0),
        (30.0, 30.0, 10.0, 10.0),
        (f32::NAN, 0.0, 10.0, 10.0),
        (0.0, 0.0, f32::INFINITY, 10.0),
        (-1e30, -1e30, 1e30, 1e30),
        (49.9, 39.9, 49.95, 39.95),
        (0.0, 0.0, 0.0, 0.0),
    ];
    let boxes: Vec<DrawBox> = odd
        .iter()
        .enumerate()
        .map(|(i, &(x1, y1, x2, y2))| DrawBox {
            x1,
            y1,
            x2,
            y2,
            class_id: i * 37,
            score: if i % 2 == 0 {
                Some(f32::NAN)
            } else {
                Some(0.5)
            },
        })
        .collect();
    draw_boxes(&mut img, &boxes, &names(), &BoxStyle::prediction());
    draw_boxes(&mut img, &boxes, &names(), &BoxStyle::ground_truth());
    // The partly visible box is clipped, its top-left corner drawn.
    assert_ne!(img.pixel(40, 30), Some([127, 127, 127]));
    // An inverted box is drawn with swapped corners.
    let mut alone = RgbImage::filled(50, 40, [127, 127, 127]);
    let no_label = BoxStyle {
        label: false,
        ..BoxStyle::prediction()
    };
    draw_boxes(&mut alone, &boxes[2..3], &names(), &no_label);
    assert_eq!(alone.pixel(10, 20), Some(class_color(2 * 37)));
    assert_eq!(alone.pixel(29, 20), Some(class_color(2 * 37)));
    // Empty picture.
    let mut empty = RgbImage::filled(0, 0, [0, 0, 0]);
    draw_boxes(&mut empty, &boxes, &names(), &BoxStyle::prediction());
}

#[test]
fn strip_scale_and_png_round_trip() {
    let left = RgbImage::filled(32, 20, [255, 255, 255]);
    let right = RgbImage::filled(30, 24, [0, 0, 0]);
    let strip = side_by_side(&left, &right, "prediction", "ground truth");
    assert_eq!(strip.width, 32 + 4 + 30);
    assert!(strip.height > 24);
    let big = scale(&strip, 3);
    assert_eq!((big.width, big.height), (strip.width * 3, strip.height * 3));
    assert_eq!(
        big.pixel(5, big.height - 1),
        strip.pixel(1, strip.height - 1)
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/strip.png");
    save_png(&big, &path).unwrap();
    assert_eq!(load_png(&path).unwrap(), big);
    assert_eq!(decode_png(&encode_png(&big).unwrap()).unwrap(), big);
    // Nothing but the final file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("strip.png")]);
}

fn frames(dir: &std::path::Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let mut img = RgbImage::filled(33, 21, [127, 127, 127]);
            img.fill_rect(i as i64 * 3, 2, i as i64 * 3 + 5, 9, class_color(i));
            let p = dir.join(format!("frame_{i:03}.png"));
            save_png(&img, &p).unwrap();
            p
        })
        .collect()
}

fn gif_frame_count(path: &std::path::Path) -> (usize, u16, u16) {
    let file = std::fs::File::open(path).unwrap();
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(file).unwrap();
    let (w, h) = (dec.width(), dec.height());
    let mut n = 0;
    while let Some(frame) = dec.read_next_frame().unwrap() {
        assert_eq!(frame.buffer.len(), w as usize * h as usize * 4);
        // The no-event grey survives quantisation exactly.
        assert_eq!(&frame.buffer[..3], &[127, 127, 127]);
        n += 1;
    }
    (n, w, h)
}

#[test]
fn gif_is_written_and_decodes_with_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let f = frames(dir.path(), 5);
    let out = dir.path().join("anim.gif");
    write_gif(&f, &out, 10.0).unwrap();
    assert_eq!(gif_frame_count(&out), (5, 33, 21));
    assert!(write_gif(&[], &out, 10.0).is_err());
}

#[test]
fn video_falls_back_to_gif_without_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let f = frames(dir.path(), 3);
    let stem = dir.path().join("video/pred");
    let out = write_video(&f, &stem, 20.0).unwrap();
    if evdet_report::ffmpeg_available() {
        assert_eq!(out, dir.path().join("video/pred.mp4"));
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
    } else {
        assert_eq!(out, dir.path().join("video/pred.gif"));
        assert_eq!(gif_frame_count(&out).0, 3);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("video"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
