//! Prophesee `.dat` decoding against `tests/fixtures/dat`.

use evdet_events::dat::read_dat;
use safetensors::SafeTensors;

fn fixtures() -> std::path::PathBuf {
    evdet_fixtures::dir("dat")
}

#[test]
fn every_dat_fixture_decodes_exactly() {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("meta.json")).unwrap()).unwrap();
    for (name, case) in meta["cases"].as_object().unwrap() {
        let dat = read_dat(&fixtures().join(format!("{name}_td.dat"))).unwrap();
        let bytes = std::fs::read(fixtures().join(format!("{name}_expected.safetensors"))).unwrap();
        let exp = SafeTensors::deserialize(&bytes).unwrap();
        let t: Vec<i64> = exp
            .tensor("t")
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let x: Vec<u16> = exp
            .tensor("x")
            .unwrap()
            .data()
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let y: Vec<u16> = exp
            .tensor("y")
            .unwrap()
            .data()
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let p = exp.tensor("p").unwrap().data().to_vec();
        assert_eq!(
            dat.events.len(),
            case["events"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(dat.events.t, t, "{name} t");
        assert_eq!(dat.events.x, x, "{name} x");
        assert_eq!(dat.events.y, y, "{name} y");
        assert_eq!(dat.events.p, p, "{name} p");
        let hw = case["height"]
            .as_u64()
            .zip(case["width"].as_u64())
            .map(|(h, w)| (h as usize, w as usize));
        assert_eq!(dat.sensor_hw, hw, "{name} sensor size");
    }
}

#[test]
fn timestamps_near_2_pow_32_stay_unsigned() {
    let dat = read_dat(&fixtures().join("gen4_like_td.dat")).unwrap();
    let last = *dat.events.t.last().unwrap();
    assert!(
        last > (1i64 << 32) - 1_000_000 && last < (1i64 << 32),
        "{last}"
    );
}
